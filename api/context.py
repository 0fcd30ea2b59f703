"""What the API needs from the service, given once at start-up (``api.app.create_app``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from alerts import Policy
from api.guard import GuardSettings
from api.live import ReadingHub
from domain.registry import RegistrySnapshot

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_MAX_RAW_ROWS = 100_000  # raw readings per request (CSV export streams up to this many)
DEFAULT_LIVE_QUEUE = 256  # messages waiting for one live client before it is dropped
DEFAULT_LIVE_MAX_SENSORS = 5_000  # sensors one live client may subscribe to
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1_000


# How the pool the API reads through is opened (the service's shared pool; the tests' server).
# Custom plans: a prepared statement on the readings hypertable with a time parameter otherwise
# turns generic after five runs, and a generic plan excludes chunks at every execution — about
# 2 µs per chunk, 1.5 ms per latest-values request at 720 chunks, growing with retention; a
# custom plan excludes them once, at planning, through TimescaleDB's chunk catalogue.
POOL_SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


# uvicorn options of the API. No per-message deflate on WebSockets: live-feed messages are a few
# hundred bytes, a few per second per client, and compressing each was 40 % of the API's time on
# the service's event loop with 500 clients at full ingest (py-spy) — CPU and GIL time taken from
# ingest to save bandwidth no one lacks.
#
# Bounds against slow or greedy clients (issue 12): an idle keep-alive connection is closed after
# 5 s; request headers are at most 16 KiB (h11's incomplete-event limit); a WebSocket message from
# a client at most 64 KiB (clients send nothing but a close); at most 2,000 connections at once
# (beyond, 503). uvicorn has no timeout for reading headers: the reverse proxy's (README → Security).
SERVER_OPTIONS = {"ws_per_message_deflate": False, "timeout_keep_alive": 5, "h11_max_incomplete_event_size": 16 * 1024,
                  "ws_max_size": 64 * 1024, "limit_concurrency": 2000}


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing. Its users keep no session state (``SET LOCAL`` and
    transaction-scoped advisory locks only), so asyncpg's reset query (advisory unlock, CLOSE
    ALL, UNLISTEN, RESET ALL) would be one more round trip per request for nothing; asyncpg still
    rolls back a transaction left open."""


@dataclasses.dataclass(frozen=True, slots=True)
class ApiSettings:
    max_raw_rows: int = DEFAULT_MAX_RAW_ROWS
    live_queue: int = DEFAULT_LIVE_QUEUE
    live_max_sensors: int = DEFAULT_LIVE_MAX_SENSORS
    live_heartbeat_s: float = 15.0
    statement_timeout_s: float = 30.0
    guard: GuardSettings = GuardSettings()  # per-address connections, auth throttle, body limits
    # where `npm install` put echarts (deploy/setup/npm.sh installs into the repository root)
    node_modules: Path = REPO_ROOT / "node_modules"
    # who reads /metrics and the API docs without a key: loopback | everyone | nobody (api/keyless.py)
    keyless_ops: str = "loopback"

    @classmethod
    def from_settings(cls, settings: Any) -> ApiSettings:
        """From the service's settings (``yujing.settings.Settings``); defaults where it has none."""
        api = getattr(settings, "api", None)
        given = {} if api is None else {f.name: getattr(api, f.name) for f in dataclasses.fields(cls) if hasattr(api, f.name)}
        if hasattr(settings, "http_keyless_ops"):
            given.setdefault("keyless_ops", settings.http_keyless_ops)
        return cls(**given)


@dataclasses.dataclass(frozen=True, slots=True)
class ApiContext:
    """``registry`` returns the current snapshot; ``ready`` returns readiness facts, e.g.
    ``{"database": True, "broker": True, "ingest_lag_s": 0.2}`` (any falsy boolean fails /readyz).
    ``alert_feed`` is the alerts package's :class:`alerts.feed.AlertFeed` (None: no alert events).
    ``alerts_policy`` names setpoints in alert texts (断电值 …); None: the packaged default policy."""

    pool: asyncpg.Pool
    registry: Callable[[], RegistrySnapshot]
    reading_hub: ReadingHub
    ready: Callable[[], dict]
    settings: ApiSettings = ApiSettings()
    alert_feed: Any = None
    alerts_policy: Policy | None = None
    clock: Callable[[], float] = time.time
