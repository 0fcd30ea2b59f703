"""Real services for tests: a fresh PostgreSQL database per test and private Mosquitto brokers.

Nothing here skips: a missing service is a failure with a message that says how to start it.

Databases are made as in production (deploy/setup/database.sh): the roles of ``store/roles.sql``
through the admin URL, the database owned by ``yujing_owner``, the extension created by the admin,
the migrations applied as ``yujing_owner``. Tests connect as the service role ``yujing``
(:func:`service_url`, the ``db_url`` fixture), so every service a test runs has no superuser,
ownership or trigger rights; :func:`database_url` (admin) and :func:`owner_url` are for the few
tests that tamper on purpose.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

REPO = Path(__file__).resolve().parents[2]
ADMIN_URL = os.environ.get("YUJING_TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MOSQUITTO = os.environ.get("YUJING_TEST_MOSQUITTO", shutil.which("mosquitto") or "/usr/sbin/mosquitto")
PROJECT_MQTT_URL = os.environ.get("YUJING_MQTT_URL", "mqtt://127.0.0.1:1884")
COLLECTOR_LOGIN = "yujing-collector"  # the service's login (deploy/mosquitto/service.acl)
TOOLS_LOGIN = "yujing-tools"  # simulators, probes, publishers and sinks of the tests

# The tools' login of every broker this process started, by its loopback port: helpers that take a
# port (tests/support/publisher.py, the benchmarks' offer processes) log in with it.
_TOOLS_LOGINS: dict[int, tuple[str, str]] = {}


def tools_login(port: int) -> tuple[str, str]:
    """(username, password) of the tools' login on the test broker listening on ``port``."""
    try:
        return _TOOLS_LOGINS[port]
    except KeyError:
        raise RuntimeError(f"no broker started by this process listens on port {port}") from None


def database_url(name: str, user: str | None = None) -> str:
    """The admin's URL of database ``name`` (or ``user``'s, passwordless: trust on loopback)."""
    parts = urlsplit(ADMIN_URL)
    if user is not None:
        host = parts.netloc.rsplit("@", 1)[-1]
        parts = parts._replace(netloc=f"{user}@{host}")
    return urlunsplit(parts._replace(path=f"/{name}"))


def service_url(name: str) -> str:
    """As the service connects: the unprivileged role ``yujing`` (store/roles.sql)."""
    from store.roles import SERVICE_ROLE

    return database_url(name, SERVICE_ROLE)


def owner_url(name: str) -> str:
    """As ``yujing migrate`` connects: the schema's owner ``yujing_owner``."""
    from store.roles import OWNER_ROLE

    return database_url(name, OWNER_ROLE)


async def admin_connect() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {ADMIN_URL} ({exc}); run `make setup` to start it"
        ) from exc


async def create_template(name: str) -> None:
    """Create a database with every migration applied, to clone per test (see the module's doc)."""
    from store.migrate import apply_migrations
    from store.roles import OWNER_ROLE, ensure_roles

    admin = await admin_connect()
    try:
        await ensure_roles(admin)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
    finally:
        await admin.close()
    conn = await asyncpg.connect(database_url(name))
    try:  # a superuser creates the extension (database.sh does the same)
        await conn.execute("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS timescaledb")
    finally:
        await conn.close()
    conn = await asyncpg.connect(owner_url(name))
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    admin = await admin_connect()
    try:
        # No connections to the template (timescaledb's scheduler would otherwise visit it and
        # make CREATE DATABASE … TEMPLATE fail with "being accessed by other users").
        await admin.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
    finally:
        await admin.close()


async def clone_database(template: str) -> str:
    name = f"yj_test_{uuid.uuid4().hex[:12]}"
    admin = await admin_connect()
    try:
        for attempt in range(50):
            try:
                await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER yujing_owner')
                break
            except asyncpg.ObjectInUseError:  # a backend still leaving the template
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", template
                )
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"template database {template} stayed in use")
    finally:
        await admin.close()
    return name


async def drop_database(name: str) -> None:
    admin = await admin_connect()
    try:
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 10.0, up: bool = True) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not {'open' if up else 'close'} within {timeout_s} s")


class Broker:
    """A private Mosquitto started from the project's configuration on a free port."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, overrides: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.gateway_port = free_port()  # the authenticated listener for gateways
        self.overrides = overrides or {}
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="yj-broker-"))
        self.proc: subprocess.Popen | None = None

    def login(self, username: str) -> tuple[str, str]:
        """(username, password) of one of yujing's own logins (created by render.sh)."""
        return username, (self.data_dir / "logins" / username).read_text().strip()

    def login_url(self, username: str) -> str:
        user, password = self.login(username)
        return f"mqtt://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The service's URL: the collector's login on the loopback listener."""
        return self.login_url(COLLECTOR_LOGIN)

    @property
    def tools_url(self) -> str:
        """The simulators' and probes' URL: the tools' login."""
        return self.login_url(TOOLS_LOGIN)

    @property
    def tools_login(self) -> tuple[str, str]:
        return self.login(TOOLS_LOGIN)

    @property
    def password_file(self) -> Path:
        return self.data_dir / "gateways.passwd"

    @property
    def acl_file(self) -> Path:
        return self.data_dir / "gateways.acl"

    def start(self) -> None:
        conf = self.data_dir / "mosquitto.conf"
        done = subprocess.run(
            ["bash", str(REPO / "deploy/mosquitto/render.sh"), str(self.port), str(self.data_dir)],
            capture_output=True,
            text=True,
            env={**os.environ, "MOSQUITTO_GATEWAY_PORT": str(self.gateway_port)},
        )
        if done.returncode != 0:  # e.g. the plugin does not build: say why
            raise RuntimeError(f"deploy/mosquitto/render.sh failed ({done.returncode}): {done.stderr[-2000:]}")
        rendered = done.stdout
        # Tests run the broker in the foreground under our control, never as a daemon.
        lines = [
            line for line in rendered.splitlines()
            if not line.startswith(("pid_file", "daemon")) and line.split(" ", 1)[0] not in self.overrides
        ]
        lines += [f"{k} {v}" for k, v in self.overrides.items()]
        conf.write_text("\n".join(lines) + "\n")
        if not Path(MOSQUITTO).exists():
            raise RuntimeError(f"mosquitto not found at {MOSQUITTO}; run `make setup`")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        wait_port(self.gateway_port)
        _TOOLS_LOGINS[self.port] = self.login(TOOLS_LOGIN)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


async def wait_for(predicate, timeout_s: float, interval_s: float = 0.05, what: str = "condition"):
    """Poll an async or sync predicate until it returns a truthy value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)
