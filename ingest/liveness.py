"""Gateway liveness: last-seen times and the stale flag, written every round.

The collector keeps each gateway's latest receive time in memory; this loop writes them in one
statement per round (``store.gateway_liveness``), which also marks gateways silent past their
expected interval (with a jitter allowance) as stale. Status messages (online/offline, the Last
Will) are committed with the readings by the writer.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import asyncpg

from store.errors import LOOP_ERRORS
from store.gateway_liveness import write_liveness
from store.periodic import run_every

log = logging.getLogger(__name__)


async def run_liveness(
    pool: asyncpg.Pool,
    seen_us: dict[int, int],
    interval_s: float,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> None:
    async def write_round() -> None:
        snapshot = dict(seen_us)
        async with pool.acquire(timeout=interval_s) as conn:
            stale = await write_liveness(conn, snapshot, clock())
        if stale:
            log.warning("gateways went stale", extra={"gateways": stale})

    await run_every("gateway liveness", interval_s, write_round, first_wait=True,
                    retry_on=LOOP_ERRORS, log_level=logging.DEBUG)
