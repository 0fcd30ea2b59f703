"""``yujing loadtest``: ramp the offered load on a running deployment and find its knee.

Two steps, because the deployment must know the load fleet's sensors before it can store them::

    # 1. write the registry of the load fleet (and the alert probe) and import it
    yujing loadtest --gateways 1000 --readings-per-message 50 --registry-only --out var/loadtest
    yujing registry import var/loadtest/registry.yaml

    # 2. run the ramp against the running service (its API's /metrics by default; it answers
    #    loopback clients without a key)
    yujing loadtest --gateways 1000 --readings-per-message 50 --rate 150000 --steps 5 --dwell 60 \\
        --service-pid $(pgrep -f 'yujing run') --out var/loadtest

The fleet is fixed by --gateways, --readings-per-message and --seed, so both steps agree; pass
--registry FILE to reuse a registry written earlier (it is checked to contain the fleet). The
report is printed and written to DIR/loadtest.json and DIR/loadtest.png. The run stops with one
line and exit status 2 when the service does not know the fleet (registry not imported) and 3
when its metrics cannot be read or show none of the load (simulators.load.check_service).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from domain.errors import FixConfiguration, RetryLater

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1884"


def loadtest(
    gateways: Annotated[int, typer.Option("--gateways", min=1, help="simulated gateways")] = 1000,
    readings_per_message: Annotated[int, typer.Option("--readings-per-message", min=1, max=10_000)] = 50,
    rate: Annotated[float, typer.Option("--rate", min=1.0, help="top offered readings/s (the last step)")] = 50_000.0,
    duration: Annotated[float, typer.Option("--duration", min=1.0, help="total seconds (dwell = duration / steps)")] = 300.0,
    steps: Annotated[int, typer.Option("--steps", min=1, help="equal steps up to --rate")] = 5,
    dwell: Annotated[float | None, typer.Option("--dwell", min=2.0, help="seconds per step (overrides --duration)")] = None,
    mqtt_url: Annotated[str, typer.Option("--mqtt-url", envvar="YUJING_TOOLS_MQTT_URL")] = DEFAULT_MQTT_URL,
    metrics_url: Annotated[str | None, typer.Option("--metrics-url", help="the service's Prometheus /metrics URL "
                                                    "(default: the API's, http://127.0.0.1:$YUJING_HTTP_PORT/metrics)")] = None,
    service_pid: Annotated[int | None, typer.Option("--service-pid", help="pid of the service, for CPU and memory")] = None,
    out: Annotated[Path, typer.Option("--out", help="directory for registry.yaml, loadtest.json, loadtest.png")] = Path("var/loadtest"),
    registry: Annotated[Path | None, typer.Option("--registry", help="an existing registry file to use instead of writing one")] = None,
    registry_only: Annotated[bool, typer.Option("--registry-only", help="write DIR/registry.yaml and exit")] = False,
    probe_interval: Annotated[float, typer.Option("--probe-interval", min=0.5, help="seconds between crossing readings")] = 2.0,
    connections: Annotated[int, typer.Option("--connections", min=1, help="MQTT connections shared by the gateways")] = 4,
    seed: Annotated[int, typer.Option("--seed")] = 1,
) -> None:
    """Ramp the offered load in steps; report committed rate, lag, dead letters, alert latency, CPU, memory and the knee."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from simulators.load import (FleetUnknown, LoadPlan, format_report, load_fleet, run_load, write_load_registry,
                                 write_outputs)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    dwell_s = dwell if dwell is not None else duration / steps
    plan = LoadPlan(gateways=gateways, readings_per_message=readings_per_message, rate=rate, steps=steps,
                    dwell_s=dwell_s, probe_interval_s=probe_interval, connections=connections, seed=seed)
    try:
        fleet = load_fleet(gateways, readings_per_message, seed)
        if registry is None:
            out.mkdir(parents=True, exist_ok=True)
            registry = out / "registry.yaml"
            write_load_registry(fleet, registry)
            typer.echo(f"registry written to {registry} (import it first: yujing registry import {registry})", err=True)
        else:
            _check_registry(registry, fleet)
    except (FixConfiguration, OSError) as exc:
        typer.echo(f"yujing loadtest: {exc}", err=True)
        raise typer.Exit(2) from None
    if registry_only:
        return
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rates = ", ".join(f"{r:,.0f}" for r in plan.step_rates())
    typer.echo(f"loadtest: {fleet.n_sensors:,} sensors on {gateways:,} gateways, {readings_per_message} readings/message; "
               f"steps of {dwell_s:g} s at {rates} readings/s to {mqtt_url}", err=True)
    if metrics_url is None:
        metrics_url = f"http://127.0.0.1:{os.environ.get('YUJING_HTTP_PORT', '8000')}/metrics"
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[step]}"),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("负载测试 loadtest", total=plan.steps * dwell_s, step="")

        def progress(k: int, done_s: float, total_s: float) -> None:
            bar.update(task, completed=done_s, step=f"step {k + 1}/{plan.steps}: {plan.step_rates()[k]:,.0f}/s")

        try:
            report = run_load(plan, mqtt_url, metrics_url=metrics_url, service_pid=service_pid, stop=stop,
                              progress=progress)
        except FleetUnknown as exc:
            typer.echo(f"yujing loadtest: {str(exc).replace('DIR/registry.yaml', str(registry))}", err=True)
            raise typer.Exit(2) from None
        except FixConfiguration as exc:
            typer.echo(f"yujing loadtest: {exc}", err=True)
            raise typer.Exit(2) from None
        except RetryLater as exc:
            typer.echo(f"yujing loadtest: {exc}", err=True)
            raise typer.Exit(3) from None
    js, png = write_outputs(report, out)
    typer.echo(format_report(report))
    typer.echo(f"report: {js}, chart: {png}", err=True)


def _check_registry(path: Path, fleet) -> None:
    from simulators.load import PROBE_ENTERPRISE

    text = path.read_text(encoding="utf-8")
    last = fleet.sensors[-1][1].id
    if PROBE_ENTERPRISE not in text or last not in text:
        raise FixConfiguration(f"--registry {path}: does not hold this load fleet (sensor {last}) and the probe "
                               f"({PROBE_ENTERPRISE}); write it with --registry-only and the same --gateways, "
                               "--readings-per-message and --seed")
