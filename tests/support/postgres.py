"""A private PostgreSQL cluster with timescaledb preloaded, for tests that restart the server.

It uses the binaries of the machine's server (the timescaledb extension was built for them) and
runs as the ``postgres`` user, so the shared server is never restarted under other tests.
:meth:`PrivateCluster.create_app_database` makes a database as setup does, for the service to use
as its unprivileged role.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.services import free_port, wait_port


def _bindir() -> Path:
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.iterdir() if (p / "bin/initdb").exists()), key=lambda p: int(p.name))
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql; run `make setup`")
    return versions[-1] / "bin"


class PrivateCluster:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="yj-pg-"))
        self.data = self.root / "data"
        shutil.chown(self.root, "postgres", "postgres")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def service_url(self, database: str) -> str:
        """As the service connects: the unprivileged role ``yujing`` (store/roles.sql)."""
        return self.url(database, "yujing")

    async def create_app_database(self, database: str) -> str:
        """A database made as deploy/setup/database.sh makes yujing's: the roles, the database
        owned by ``yujing_owner``, the extension by the superuser, the migrations as the owner.
        Returns the service's URL."""
        import asyncpg

        from store.migrate import apply_migrations
        from store.roles import ensure_roles

        admin = await asyncpg.connect(self.admin_url)
        try:
            await ensure_roles(admin)
            await admin.execute(f'CREATE DATABASE "{database}" OWNER yujing_owner')
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.url(database))
        try:
            await conn.execute("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS timescaledb")
        finally:
            await conn.close()
        conn = await asyncpg.connect(self.url(database, "yujing_owner"))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        return self.service_url(database)

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, cwd="/tmp")

    def init(self, **settings: str) -> None:
        """initdb, then append ``settings`` (name=value) to postgresql.conf."""
        self._as_postgres(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "shared_preload_libraries = 'timescaledb'\ntimescaledb.max_background_workers = 2\n"
                "max_worker_processes = 16\nshared_buffers = 256MB\nfsync = on\n"
            )
            for name, value in settings.items():
                conf.write(f"{name} = '{value}'\n")

    def start(self) -> None:
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "start")
        wait_port(self.port)

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash as far as clients see it: no goodbye, open transactions lost."""
        self.stop(mode)
        self.start()

    def close(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

