"""``yujing demo``: what a newcomer should see first.

The service (ingest, detectors, alerts, API and dashboard) with the ``jiangxi-demo`` fleet — 42
enterprises in Jiangxi's eleven cities, all five industries — feeding it through the broker, and
the shipped incident scenarios recurring now and then.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from simulators import PublisherOptions, RunOptions, build_fleet, load_preset, load_scenario, registry_document, scenario_names
from store.migrate import apply_migrations
from store.registry import import_registry
from store.registry_file import parse_registry_document
from yujing.service import Service
from yujing.settings import Settings

log = logging.getLogger(__name__)

PRESET = "jiangxi-demo"


async def prepare_database(settings: Settings, fleet) -> None:
    conn = await asyncpg.connect(settings.database_url, timeout=settings.database_timeout_s)
    try:
        await apply_migrations(conn)
        report = await import_registry(conn, parse_registry_document(registry_document(fleet)))
    finally:
        await conn.close()
    log.info("demo registry imported", extra={"changes": report.summary()})


async def run_demo(service: Service, speed: float, recur_s: float, seed: int) -> None:
    settings = service.settings
    fleet = build_fleet(load_preset(PRESET, seed=seed or None))
    await prepare_database(settings, fleet)
    scenarios = [load_scenario(name) for name in scenario_names()]
    async with asyncio.TaskGroup() as tg:
        serving = tg.create_task(service.run(), name="service")
        await service.ready.wait()
        log.info("demo fleet starting", extra={"preset": PRESET, "scenarios": [s.name for s in scenarios],
                                               "speed": speed, "recur_s": recur_s})
        simulating = tg.create_task(
            _simulate(fleet, settings.mqtt_url, scenarios, seed, speed, recur_s), name="fleet"
        )
        await serving
        simulating.cancel()


async def _simulate(fleet, mqtt_url: str, scenarios, seed: int, speed: float, recur_s: float) -> None:
    from simulators import run_simulation_async

    await run_simulation_async(
        fleet,
        PublisherOptions(mqtt_url),
        scenarios=scenarios,
        seed=seed,
        options=RunOptions(speed=speed, recur_s=recur_s),
    )
