"""Shared fixtures: a migrated PostgreSQL database per test, private brokers, the project broker."""

from __future__ import annotations

import os
import uuid

import asyncpg
import pytest

from tests.support import services

TEMPLATE = f"yj_template_{os.getpid()}"


@pytest.fixture(scope="session")
async def db_template():
    await services.create_template(TEMPLATE)
    yield TEMPLATE
    await services.drop_database(TEMPLATE)


@pytest.fixture
async def db_name(db_template):
    """A fresh, migrated database of this test's own."""
    name = await services.clone_database(db_template)
    yield name
    await services.drop_database(name)


@pytest.fixture
def db_url(db_name):
    """The test database as the service connects to it: the unprivileged role ``yujing``."""
    return services.service_url(db_name)


@pytest.fixture
def admin_db_url(db_name):
    """The test database as a superuser (for tests that tamper with it on purpose)."""
    return services.database_url(db_name)


@pytest.fixture
async def db(db_url):
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


@pytest.fixture
def broker():
    """A private Mosquitto with the project's configuration, on a free port."""
    b = services.Broker()
    b.start()
    yield b
    b.close()


@pytest.fixture
def topic_prefix() -> str:
    """A unique enterprise id, so tests sharing a broker never see each other's messages."""
    return f"T{uuid.uuid4().hex[:10]}"
