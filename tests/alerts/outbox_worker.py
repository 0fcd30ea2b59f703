"""A standalone outbox worker, for the crash tests: ``python -m tests.alerts.outbox_worker DB URL LEASE_S``."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import httpx

from alerts.channels import Sender
from alerts.outbox import Deliverer
from domain.clock import now_us
from tests.alerts.support import make_policy


async def main(db_url: str, receiver_url: str, lease: str) -> None:
    policy = make_policy(receiver_url, outbox={"lease": lease, "backoff_initial": "0.1s", "backoff_max": "0.5s",
                                               "concurrency": 4})
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
    async with httpx.AsyncClient() as http:
        d = Deliverer(pool, policy, Sender(http, None, now_us, 5.0), now_us, owner=f"worker-{os.getpid()}")
        print("ready", flush=True)
        while True:
            if not await d.deliver_due():
                await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
