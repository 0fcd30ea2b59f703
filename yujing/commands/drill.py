"""``yujing drill``: run one incident against a live deployment and score it.

Two steps, as for ``yujing simulate``: the deployment must know the fleet's sensors first::

    yujing drill --preset jiangxi-demo --registry-out var/drill-registry.yaml --registry-only
    yujing registry import var/drill-registry.yaml
    yujing drill --scenario methane-fan-stop --seed 3 --speed 20 [--json var/drill.json]

The fleet is published while the drill runs (do not run ``yujing demo`` with the same fleet at
the same time: its alerts would count as false alarms and its readings would interleave). Exit
status: 0 passed; 1 missed, under-graded or late; 2 a configuration error; 3 the broker is away.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from domain.errors import FixConfiguration, RetryLater

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1884"


def drill(
    scenario: Annotated[str | None, typer.Option("--scenario", help="scenario name (simulators/scenarios) or YAML path")] = None,
    seed: Annotated[int, typer.Option("--seed", help="draws the incident from the scenario's ranges")] = 0,
    fleet: Annotated[Path | None, typer.Option("--fleet", help="fleet YAML file (simulators/fleet.py format)")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="a shipped fleet (default jiangxi-demo)")] = None,
    mqtt_url: Annotated[str, typer.Option("--mqtt-url", envvar="YUJING_TOOLS_MQTT_URL")] = DEFAULT_MQTT_URL,
    speed: Annotated[float, typer.Option("--speed", min=1.0, help="simulated seconds per wall second")] = 1.0,
    grace_s: Annotated[float, typer.Option("--grace-s", help="simulated seconds observed after the deadline")] = 30.0,
    stop_when_detected: Annotated[bool, typer.Option("--stop-when-detected", help="stop once the expected grade is seen")] = False,
    connections: Annotated[int | None, typer.Option("--connections", help="share N MQTT connections (default: one per gateway, with Last Wills)")] = None,
    registry_out: Annotated[Path | None, typer.Option("--registry-out", help="write the fleet's registry YAML here")] = None,
    registry_only: Annotated[bool, typer.Option("--registry-only", help="only write --registry-out, then exit")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the scored report as JSON here")] = None,
) -> None:
    """Run one incident scenario against a running yujing and score detection, delay, grade and false alarms."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from simulators import build_fleet, load_fleet_config, load_preset, load_scenario, scenario_names, write_registry
    from simulators.drill import DrillOptions, format_report, run_drill

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if fleet is not None and preset is not None:
        raise typer.BadParameter("give at most one of --fleet FILE.yaml or --preset NAME")
    try:
        config = load_fleet_config(fleet) if fleet else load_preset(preset or "jiangxi-demo")
        built = build_fleet(config)
        if registry_out is not None:
            registry_out.parent.mkdir(parents=True, exist_ok=True)
            write_registry(built, registry_out)
            typer.echo(f"registry written to {registry_out}; import it first: yujing registry import {registry_out}", err=True)
        if registry_only:
            return
        if scenario is None:
            raise FixConfiguration(f"--scenario: required; shipped: {', '.join(scenario_names())}")
        spec = load_scenario(scenario)
    except FixConfiguration as exc:
        typer.echo(f"yujing drill: {exc}", err=True)
        raise typer.Exit(2) from None

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    typer.echo(f"drill {spec.name} (seed {seed}) on fleet {config.name}: {built.n_sensors} sensors, "
               f"{built.n_gateways} gateways, speed {speed:g}x, broker {mqtt_url}", err=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[sim]}"),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(f"演练 {spec.name}", total=1.0, sim="")

        def progress(done_s: float, total_s: float) -> None:
            bar.update(task, total=total_s, completed=done_s, sim=f"{done_s:,.0f}/{total_s:,.0f} simulated s")

        try:
            report = run_drill(built, spec, mqtt_url, seed=seed, stop=stop, progress=progress,
                               options=DrillOptions(speed=speed, grace_s=grace_s, stop_when_scored=stop_when_detected,
                                                    connections=connections))
        except FixConfiguration as exc:
            typer.echo(f"yujing drill: {exc}", err=True)
            raise typer.Exit(2) from None
        except RetryLater as exc:
            typer.echo(f"yujing drill: {exc}", err=True)
            raise typer.Exit(3) from None
    typer.echo(format_report(report))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    if stop.is_set():
        typer.echo("interrupted: the score covers only what ran", err=True)
    if not report.score.passed:
        raise typer.Exit(1)
