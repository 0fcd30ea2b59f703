"""Keeps the current registry snapshot and reloads it when the registry version moves."""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg

from domain.registry import RegistrySnapshot
from store.errors import LOOP_ERRORS
from store.periodic import run_every
from store.registry_records import load_snapshot, registry_version

log = logging.getLogger(__name__)


class RegistryWatcher:
    def __init__(self, pool: asyncpg.Pool, retention_days: Callable[[str], int], poll_s: float) -> None:
        self._pool = pool
        self._retention_days = retention_days
        self._poll_s = poll_s
        self._listeners: list[Callable[[RegistrySnapshot], None]] = []
        self.snapshot: RegistrySnapshot | None = None

    def subscribe(self, listener: Callable[[RegistrySnapshot], None]) -> None:
        """Called with every new snapshot (and at once with the current one)."""
        self._listeners.append(listener)
        if self.snapshot is not None:
            listener(self.snapshot)

    async def load(self) -> RegistrySnapshot:
        async with self._pool.acquire() as conn:
            snapshot = await load_snapshot(conn, self._retention_days)
        self.snapshot = snapshot
        for listener in self._listeners:
            listener(snapshot)
        log.info("registry loaded", extra={"version": snapshot.version, "sensors": len(snapshot.sensors)})
        return snapshot

    async def poll_once(self) -> None:
        """Read the version (cheap) and reload the snapshot if it moved."""
        async with self._pool.acquire(timeout=self._poll_s) as conn:
            version = await registry_version(conn)
        if self.snapshot is None or version != self.snapshot.version:
            await self.load()

    async def run(self) -> None:
        """Poll every ``poll_s`` and reload on change; survives database outages."""
        await run_every("registry poll", self._poll_s, self.poll_once, first_wait=True, retry_on=LOOP_ERRORS,
                        log_level=logging.DEBUG)
