from __future__ import annotations

import httpx
import pytest

from tests.api.support import ApiServer, seed


@pytest.fixture
async def seeded(db_url):
    return await seed(db_url)


@pytest.fixture
def server(db_url, seeded):
    s = ApiServer(db_url).start()
    yield s
    s.stop()


@pytest.fixture
def keys(seeded) -> dict[str, str]:
    return seeded["keys"]


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}
