"""The broker's password file and ACL file for gateways, rendered from the gateways' credentials
(read through ``store.gateway_credentials``).

Each gateway may publish only its own readings and status (including its Last Will) and read only
its own alerts; its monitoring login may only read its alerts and errors. Files are replaced
atomically, then the broker is sent SIGHUP: Mosquitto 2.0 re-reads both files and disconnects
clients whose login no longer holds.
:class:`BrokerFilesWriter` does this whenever the credentials change (``broker_auth_version``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import tempfile
from pathlib import Path

import asyncpg

from domain.errors import FixConfiguration
from domain.topics import alerts_topic, status_topic, up_topic
from store.errors import LOOP_ERRORS
from store.gateway_credentials import BrokerLogin, broker_auth_version, broker_logins
from store.periodic import run_every

log = logging.getLogger(__name__)

HEADER = "# Written by yujing from the database (gateway_credentials); edits here are overwritten.\n"
NEW_FILE_MODE = 0o640


def render_password_file(logins: list[BrokerLogin]) -> str:
    lines = [f"{x.username}:{x.password_hash}\n" for x in logins]
    lines += [f"{x.monitor_username}:{x.monitor_password_hash}\n" for x in logins if x.monitor_password_hash]
    return HEADER + "".join(lines)


def errors_topic(enterprise: str, gateway: str) -> str:
    """Where yujing will tell a gateway what it refused (not published yet; the ACL is ready)."""
    return alerts_topic(enterprise, gateway).removesuffix("/alerts") + "/errors"


def render_acl_file(logins: list[BrokerLogin]) -> str:
    blocks = [
        f"user {x.username}\n"
        f"topic write {up_topic(x.enterprise, x.gateway)}\n"
        f"topic write {status_topic(x.enterprise, x.gateway)}\n"
        f"topic read {alerts_topic(x.enterprise, x.gateway)}\n"
        for x in logins
    ]
    blocks += [
        f"user {x.monitor_username}\n"
        f"topic read {alerts_topic(x.enterprise, x.gateway)}\n"
        f"topic read {errors_topic(x.enterprise, x.gateway)}\n"
        for x in logins if x.monitor_password_hash
    ]
    return HEADER + "\n".join(blocks)


def write_atomically(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` (same directory, fsync, rename); False if already equal.

    An existing file's mode and group are kept, so a file made readable by the broker's group
    stays so; a new file gets mode 0640."""
    data = text.encode()
    try:
        if path.read_bytes() == data:
            return False
        st = path.stat()
        mode, gid = st.st_mode & 0o7777, st.st_gid
    except FileNotFoundError:
        mode, gid = NEW_FILE_MODE, -1
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise FixConfiguration(f"cannot write broker file {path} ({exc})") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if gid != -1 and gid != os.getegid():
            os.chown(tmp, -1, gid)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FixConfiguration(f"cannot write broker file {path} ({exc})") from exc
    return True


def reload_broker(pid_file: Path) -> int:
    """Send SIGHUP to the Mosquitto whose pid is in ``pid_file``; returns the pid."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise FixConfiguration(f"no broker pid in {pid_file} ({exc}); is the broker running?") from exc
    comm = Path(f"/proc/{pid}/comm")
    if comm.exists() and comm.read_text().strip() != "mosquitto":
        raise FixConfiguration(f"pid {pid} in {pid_file} is not mosquitto (a stale pid file?)")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError as exc:
        raise FixConfiguration(f"broker pid {pid} in {pid_file} is not running") from exc
    return pid


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerFiles:
    password_file: Path
    acl_file: Path
    pid_file: Path | None = None  # the broker to send SIGHUP to after a change

    async def sync(self, conn: asyncpg.Connection, *, force_reload: bool = False) -> tuple[int, bool]:
        """Render both files from the database; reload the broker if either changed (or
        ``force_reload``). Returns (number of gateway logins, whether a file changed)."""
        logins = await broker_logins(conn)
        changed = write_atomically(self.acl_file, render_acl_file(logins))
        changed = write_atomically(self.password_file, render_password_file(logins)) or changed
        if (changed or force_reload) and self.pid_file is not None:
            reload_broker(self.pid_file)
        return len(logins), changed


class BrokerFilesWriter:
    """Keeps the broker files in step with the database: polls ``broker_auth_version``."""

    def __init__(self, pool: asyncpg.Pool, files: BrokerFiles, poll_s: float) -> None:
        self._pool = pool
        self._files = files
        self._poll_s = poll_s
        self.version: int | None = None  # last version written
        self._reload_pending = False  # files written but the broker not told (it was down)

    async def sync_once(self) -> None:
        async with self._pool.acquire(timeout=self._poll_s) as conn:
            version = await broker_auth_version(conn)
            if version == self.version and not self._reload_pending:
                return
            retry_reload, self._reload_pending = self._reload_pending, True
            count, changed = await self._files.sync(conn, force_reload=retry_reload)
        self.version = version
        self._reload_pending = False
        if changed:
            log.info("broker files written", extra={"gateways": count, "version": version})

    async def run(self) -> None:
        """Survives database outages and a broker that is down (retried at the next poll)."""
        await run_every("broker files", self._poll_s, self.sync_once,
                        retry_on=(*LOOP_ERRORS, FixConfiguration))
