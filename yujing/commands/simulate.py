"""``yujing simulate``: publish a fleet (a YAML file or a preset) to the broker and write its registry.

Registered by the CLI as ``yujing simulate --fleet FILE.yaml|--preset jiangxi-demo
[--scenario NAME]... [--rate R] [--duration-s D] [--registry-out FILE] [--seed N]``.
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


def simulate(
    fleet: Annotated[Path | None, typer.Option("--fleet", help="fleet YAML file (simulators/fleet.py format)")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="a shipped fleet, e.g. jiangxi-demo")] = None,
    scenario: Annotated[list[str], typer.Option("--scenario", help="scenario name or YAML path; repeatable")] = [],  # noqa: B006
    rate: Annotated[float | None, typer.Option("--rate", help="offered readings/s (scales every scan period)")] = None,
    duration_s: Annotated[float | None, typer.Option("--duration-s", help="stop after this many seconds")] = None,
    mqtt_url: Annotated[str, typer.Option("--mqtt-url", envvar="YUJING_TOOLS_MQTT_URL")] = DEFAULT_MQTT_URL,
    registry_out: Annotated[Path | None, typer.Option("--registry-out", help="write the registry YAML here")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    speed: Annotated[float, typer.Option("--speed", help="simulated seconds per second")] = 1.0,
    connections: Annotated[int | None, typer.Option("--connections", help="share N MQTT connections (default: one per gateway)")] = None,
) -> None:
    """Publish simulated gateways to the broker; print each scenario's ground truth as JSON."""
    from simulators import (
        PublisherOptions,
        RunOptions,
        build_fleet,
        load_fleet_config,
        load_preset,
        load_scenario,
        run_simulation,
        write_registry,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (fleet is None) == (preset is None):
        raise typer.BadParameter("give exactly one of --fleet FILE.yaml or --preset NAME")
    try:
        config = load_fleet_config(fleet, seed=seed or None) if fleet else load_preset(preset, seed=seed or None)
        built = build_fleet(config)
        if rate is not None:
            built = built.with_rate(rate)
        specs = [load_scenario(s) for s in scenario]
    except FixConfiguration as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if registry_out is not None:
        write_registry(built, registry_out)
        typer.echo(f"registry written to {registry_out} (import with: yujing registry import {registry_out})", err=True)
    typer.echo(f"fleet {config.name}: {built.n_sensors} sensors on {built.n_gateways} gateways, "
               f"offering {built.offered_rate():.1f} readings/s to {mqtt_url}", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        report = run_simulation(
            built,
            PublisherOptions(mqtt_url=mqtt_url, connections=connections),
            scenarios=specs,
            seed=seed,
            options=RunOptions(duration_s=duration_s, speed=speed),
            stop=stop,
            on_incident=lambda t: typer.echo(json.dumps({"ground_truth": t.as_dict()}, ensure_ascii=False)),
        )
    except RetryLater as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    p = report.publisher
    typer.echo(json.dumps({"wall_s": round(report.wall_s, 3), "messages": p.published, "acked": p.acked,
                           "readings": p.readings, "readings_per_s": round(report.readings_per_s, 1),
                           "max_lag_s": round(report.max_lag_s, 3), "drained": report.drained}), err=True)
