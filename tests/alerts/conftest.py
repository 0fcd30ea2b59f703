from __future__ import annotations

import asyncpg
import pytest

from tests.alerts.support import FakeClock, Receiver, seed_registry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
async def seeded(db_url):
    conn = await asyncpg.connect(db_url)
    await seed_registry(conn)
    await conn.close()
    return db_url


@pytest.fixture
async def pool(seeded):
    p = await asyncpg.create_pool(seeded, min_size=1, max_size=4)
    yield p
    await p.close()
