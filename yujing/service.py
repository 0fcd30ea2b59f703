"""The service: one TaskGroup running every stage, wired in one place.

    MQTT ──▶ pipeline: decode ─▶ live feed ─▶ detectors ─▶ alerts ──▶ writers ──▶ TimescaleDB ──▶ ack
             registry watcher · gateway liveness · detector ticks · alerts timers and outbox
             rollups · retention · API (uvicorn) · gauges

The pipeline's order is one function (yujing/pipeline.py). Shutdown (SIGTERM/SIGINT): intake stops
taking messages, the decoded batch is flushed and
committed, its messages acknowledged, then the MQTT session is closed (persisting in the broker
with whatever was not acknowledged) and the pool closed — all under a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable

import asyncpg
import prometheus_client
import uvicorn

from alerts import AlertFeed, load_policy
from alerts.service import AlertsService
from api import ApiContext, ApiSettings, ReadingHub, create_app
from api.context import POOL_SERVER_SETTINGS, SERVER_OPTIONS, keep_session
from detectors import Engine
from detectors.rebuild import rebuild
from domain.clock import now_us, utc_from_us
from domain.errors import FixConfiguration, RetryLater
from domain.topics import STATUS_FILTER, UP_FILTER
from ingest import metrics
from ingest.bridge import MqttBridge
from ingest.batcher import Batcher
from ingest.broker_files import BrokerFiles, BrokerFilesWriter
from ingest.decode import DecodeLimits, Decoder
from ingest.liveness import run_liveness
from store.migrate import TIMESCALEDB_MISSING
from store.registry_watch import RegistryWatcher
from store.retention import run_retention
from store.roles import service_role_problems
from store.rollups import run_rollups
from store.telemetry import recent_readings
from store.writer import ReadingWriter
from yujing.detection import Detection, load_detector_config
from yujing.pipeline import Pipeline, run_pipeline
from yujing.settings import Settings

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 30.0
ROLLUP_INTERVAL_S = 5.0
OTHER_CONNECTIONS = 8  # API, alerts, rollups, retention, liveness, registry


RESTART_MAX_S = 30.0


async def supervise(name: str, run: Callable[[], Awaitable[None]], restart_max_s: float = RESTART_MAX_S) -> None:
    """Run a long-lived stage until it returns; if it raises, log it and start it again after a
    capped, jittered backoff. A restarted pipeline leaves the messages it had taken but not
    committed unacknowledged: the broker delivers them again on the session's next connection."""
    delay_s = min(0.5, restart_max_s)
    while True:
        try:
            await run()
            return
        except Exception:  # one stage run: never let it end the service (CancelledError passes)
            log.exception("stage failed; starting it again", extra={"stage": name, "in_s": round(delay_s, 2)})
        await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))
        delay_s = min(delay_s * 2, restart_max_s)


async def create_pool(settings: Settings, min_size: int, max_size: int, **options) -> asyncpg.Pool:
    try:
        return await asyncpg.create_pool(
            settings.database_url,
            min_size=min_size,
            max_size=max_size,
            timeout=settings.database_timeout_s,
            command_timeout=60,
            **options,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise RetryLater(f"YUJING_DATABASE_URL: cannot connect to the database ({exc})") from exc


async def check_schema(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        has_ext = await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        if not has_ext:
            major = int(await conn.fetchval("SHOW server_version_num")) // 10000
            raise FixConfiguration(TIMESCALEDB_MISSING.format(major=major) + " Then run `yujing migrate`.")
        migrated = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not migrated:
            raise FixConfiguration("the database has no yujing schema: run `yujing migrate` first")
        for problem in await service_role_problems(conn):
            log.warning("YUJING_DATABASE_URL: %s; connect as the service role `yujing` (store/roles.sql)", problem)


class Service:
    """Builds the stages from settings; :meth:`run` runs them until ``stop`` is set."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.batcher: Batcher | None = None
        self.bridge: MqttBridge | None = None
        self.decoder: Decoder | None = None
        self.detection: Detection | None = None
        self.alerts: AlertsService | None = None
        self.alert_feed = AlertFeed()
        self.reading_hub = ReadingHub()
        self.api_server: uvicorn.Server | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        s = self.settings
        ingest = s.ingest
        # Configuration first: a bad file stops start-up before anything connects.
        detector_config = load_detector_config(s.detectors_config)
        policy = load_policy(s.alerts_config)
        # The writers have connections of their own, so API queries and background jobs never
        # make a commit wait for a connection.
        write_pool = await create_pool(s, min_size=ingest.writer_connections, max_size=ingest.writer_connections)
        try:
            pool = await create_pool(s, min_size=2, max_size=OTHER_CONNECTIONS, reset=keep_session,
                                     server_settings=POOL_SERVER_SETTINGS)
        except BaseException:
            await write_pool.close()
            raise
        try:
            await check_schema(pool)
            watcher = RegistryWatcher(pool, s.retention.days, ingest.registry_poll_s)
            registry = await watcher.load()
            decoder = Decoder(
                registry,
                DecodeLimits(ingest.max_payload_bytes, ingest.dead_letter_payload_bytes, ingest.clock_skew_tolerance_s,
                             ingest.max_burst_bytes, ingest.gateway_messages_per_minute,
                             ingest.gateway_bytes_per_minute, ingest.gateway_quota_burst_minutes),
            )
            watcher.subscribe(decoder.use)
            self.decoder = decoder
            engine = Engine(detector_config)
            watcher.subscribe(engine.set_registry)
            if s.detectors_rebuild_s:
                async with pool.acquire() as conn:
                    replayed = await rebuild(engine, recent_readings(conn, now_us(), s.detectors_rebuild_s))
                log.info("detector state rebuilt", extra={"readings": replayed, "lookback_s": s.detectors_rebuild_s})
            self.bridge = bridge = self._bridge()
            self.alerts = AlertsService(
                pool, policy, lambda: watcher.snapshot, now_us, self.alert_feed,
                mqtt_publish=bridge.publish,
            )
            self.detection = Detection(engine, lambda: watcher.snapshot)
            writer = ReadingWriter(write_pool, timeout_s=60,
                                   dead_letters_per_gateway_minute=ingest.dead_letters_per_gateway_minute)
            self.batcher = Batcher(ingest, bridge, writer)
            pipeline = Pipeline(self.batcher, decoder, self.reading_hub, self.detection, self.alerts.handle)
            if s.metrics_port:
                # no key check on this listener: loopback only unless keys are waived for everyone
                addr = s.http_host if s.http_keyless_ops == "everyone" else "127.0.0.1"
                prometheus_client.start_http_server(s.metrics_port, addr=addr)
            self.api_server = self._api_server(pool, watcher)
            bridge.start()
            try:
                await bridge.wait_subscribed(STARTUP_TIMEOUT_S)
                log.info("yujing running", extra={"mqtt": f"{s.mqtt.host}:{s.mqtt.port}", "client_id": s.mqtt_client_id})
                self.ready.set()
                await self._run_stages(pool, watcher, pipeline)
            finally:
                bridge.stop()
        finally:
            await pool.close()
            await write_pool.close()
        log.info("yujing stopped")

    async def _run_stages(self, pool, watcher: RegistryWatcher, pipeline: Pipeline) -> None:
        ingest = self.settings.ingest
        batcher = pipeline.batcher
        stages = {
            "registry-watch": watcher.run,
            "liveness": lambda: run_liveness(
                pool, batcher.gateway_seen_us, ingest.liveness_check_s,
                clock=lambda: utc_from_us(batcher.liveness_now_us())),
            "gauges": self._run_gauges,
            "detector-ticks": lambda: self.detection.run_ticks(self.settings.detectors_tick_s, batcher.liveness_now_us,
                                                               self.alerts.handle),
            "alerts": self.alerts.run,
            "retention": lambda: run_retention(pool, self.settings.retention),
            "rollups": lambda: run_rollups(pool, ROLLUP_INTERVAL_S),
            **({"broker-files": self._broker_files(pool).run} if self.settings.gateway_broker.enabled else {}),
            "api": self.api_server.serve,
        }
        async with asyncio.TaskGroup() as tg:
            # Each stage is supervised: one that fails is logged and started again, so it can never
            # end the TaskGroup and with it the intake.
            background = [tg.create_task(supervise(name, run), name=name) for name, run in stages.items()]
            collecting = tg.create_task(supervise("pipeline", lambda: run_pipeline(pipeline, self.stop)), name="pipeline")
            try:
                await self.stop.wait()
                log.info("stopping: flushing and acknowledging what was decoded")
                async with asyncio.timeout(ingest.shutdown_deadline_s):
                    await asyncio.shield(collecting)
            except TimeoutError:
                log.error("shutdown deadline passed; what was not committed stays unacknowledged in the broker")
                collecting.cancel()
            finally:
                self.api_server.should_exit = True
                self.reading_hub.close_all()
                for task in background:
                    if task.get_name() != "api":
                        task.cancel()

    def _ready(self) -> dict:
        oldest = self.batcher.oldest_unacked_s if self.batcher else None
        lag = max(0.0, time.time() - oldest) if oldest else 0.0
        return {"broker": bool(self.bridge and self.bridge.connected),
                "mqtt_session_held": not (self.bridge and self.bridge.session_taken_over),  # not taken over
                "ingest_lag_s": round(lag, 3)}

    def _api_server(self, pool, watcher: RegistryWatcher) -> uvicorn.Server:
        s = self.settings
        ctx = ApiContext(
            pool=pool,
            registry=lambda: watcher.snapshot,
            reading_hub=self.reading_hub,
            ready=self._ready,
            settings=ApiSettings.from_settings(s),
            alert_feed=self.alert_feed,
            alerts_policy=self.alerts.policy if self.alerts else None,
            clock=time.time,
        )
        config = uvicorn.Config(
            create_app(ctx), host=s.http_host, port=s.http_port, lifespan="off", log_config=None,
            access_log=False, **SERVER_OPTIONS,
        )
        return uvicorn.Server(config)

    def _broker_files(self, pool) -> BrokerFilesWriter:
        gb = self.settings.gateway_broker
        return BrokerFilesWriter(pool, BrokerFiles(gb.password_file, gb.acl_file, gb.pid_file), gb.poll_s)

    def _bridge(self) -> MqttBridge:
        s = self.settings
        return MqttBridge(
            s.mqtt,
            s.mqtt_client_id,
            [UP_FILTER, STATUS_FILTER],
            session_expiry_s=s.mqtt_session_expiry_s,
            receive_maximum=s.mqtt_receive_maximum,
            keepalive_s=s.mqtt_keepalive_s,
            tls_ca=str(s.mqtt_tls_ca) if s.mqtt_tls_ca else None,
        )

    async def _run_gauges(self) -> None:
        while True:
            metrics.mqtt_connected.set(1 if self.bridge and self.bridge.connected else 0)
            await asyncio.sleep(1.0)


async def run_until_signalled(service: Service, runner: Awaitable[None] | None = None) -> None:
    """Run ``runner`` (default: the service) with SIGTERM and SIGINT stopping the service."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, service.stop.set)
    await (runner if runner is not None else service.run())
