"""``yujing demo``: what a newcomer should see first.

The service (ingest, detectors, alerts, API and dashboard) with the ``jiangxi-demo`` fleet — 42
enterprises in Jiangxi's eleven cities, all five industries — feeding it through the broker, and
the shipped incident scenarios recurring now and then.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from api import Scope, create_key
from simulators import (
    PublisherOptions,
    RunOptions,
    build_fleet,
    load_preset,
    load_scenario,
    registry_document,
    run_simulation_async,
    scenario_names,
)
from store.migrate import apply_migrations
from store.registry_records import import_registry
from store.registry_file import parse_registry_document
from yujing.service import Service
from yujing.settings import Settings

log = logging.getLogger(__name__)

PRESET = "jiangxi-demo"


async def prepare_database(settings: Settings, fleet) -> str:
    """Migrate (as the schema owner), import the fleet's registry, and make a province-wide key
    for the dashboard (as the service)."""
    conn = await asyncpg.connect(settings.migration_url, timeout=settings.database_timeout_s)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    conn = await asyncpg.connect(settings.database_url, timeout=settings.database_timeout_s)
    try:
        report = await import_registry(conn, parse_registry_document(registry_document(fleet)))
        key, _ = await create_key(conn, Scope("province"), name="yujing demo dashboard")
    finally:
        await conn.close()
    log.info("demo registry imported", extra={"changes": report.summary()})
    return key


async def run_demo(service: Service, speed: float, recur_s: float, seed: int) -> None:
    settings = service.settings
    fleet = build_fleet(load_preset(PRESET, seed=seed or None))
    key = await prepare_database(settings, fleet)
    scenarios = [load_scenario(name) for name in scenario_names()]
    async with asyncio.TaskGroup() as tg:
        serving = tg.create_task(service.run(), name="service")
        await service.ready.wait()
        print(
            f"\n  yujing demo — 预警 dashboard: http://{settings.http_host}:{settings.http_port}/dashboard/\n"
            f"  API key (province scope, shown once): {key}\n  Stop with Ctrl-C.\n",
            flush=True,
        )
        log.info("demo fleet starting", extra={"preset": PRESET, "scenarios": [s.name for s in scenarios],
                                               "speed": speed, "recur_s": recur_s})
        simulating = tg.create_task(
            _simulate(fleet, settings.tools_mqtt_url or settings.mqtt_url, scenarios, seed, speed, recur_s),
            name="fleet",
        )
        await serving
        simulating.cancel()


async def _simulate(fleet, mqtt_url: str, scenarios, seed: int, speed: float, recur_s: float) -> None:
    await run_simulation_async(
        fleet,
        PublisherOptions(mqtt_url),
        scenarios=scenarios,
        seed=seed,
        options=RunOptions(speed=speed, recur_s=recur_s),
    )
