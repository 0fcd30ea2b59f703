"""Accounting for the backlog drain: every published reading stored once, the broker's own counters,
the service's reconnects, and RSS figures from the service's 0.2 s sampler."""

from __future__ import annotations

import json
import statistics
import threading
from pathlib import Path

import asyncpg

from bench.ingest_parts.load import GATEWAYS, SENSORS_PER_GATEWAY, Ledger
from tests.support.services import tools_login

MB = 2**20

# Per sensor: rows and the sum of their times in ms, against what the publisher sent its gateway.
PER_SENSOR_SQL = """
WITH per AS (
    SELECT sensor, count(*) AS n, sum((extract(epoch FROM ts) * 1000)::bigint) AS ts_ms
    FROM readings GROUP BY sensor
)
SELECT s.code, per.n, per.ts_ms FROM per JOIN sensors s ON s.id = per.sensor
"""


async def check_ledger(db_url: str, ledger: Ledger) -> dict:
    """Compare every sensor's stored rows (count and sum of times) with what the publisher sent.

    The table's unique (sensor, ts) index rules out a reading stored twice; equal counts rule out a
    loss; equal sums of times check that the rows are the published ones (a checksum)."""
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(PER_SENSOR_SQL, timeout=1800)
    finally:
        await conn.close()
    stored = {r["code"]: (r["n"], int(r["ts_ms"])) for r in rows}
    wrong, missing_sensors, expected_rows = [], 0, 0
    for g in range(GATEWAYS):
        want = (ledger.messages[g], ledger.ts_ms_sum[g])
        for s in range(SENSORS_PER_GATEWAY):
            code = f"G{g:04d}-T{s:02d}"
            expected_rows += want[0]
            got = stored.pop(code, (0, 0))
            if want[0] and got == (0, 0):
                missing_sensors += 1
            if got != want:
                wrong.append({"sensor": code, "sent": want[0], "stored": got[0], "ts_ms_sum_diff": got[1] - want[1]})
    return {
        "expected_rows": expected_rows,
        "stored_rows": sum(r["n"] for r in rows),
        "sensors_checked": GATEWAYS * SENSORS_PER_GATEWAY,
        "sensors_wrong": len(wrong),
        "sensors_without_rows": missing_sensors,
        "foreign_sensors": len(stored),
        "unacknowledged_by_broker": ledger.unacked.value,
        "examples": wrong[:5],
        "every_reading_once": not wrong and not stored and ledger.unacked.value == 0,
    }


class BrokerSys:
    """The broker's $SYS counters (every second with the bench's ``sys_interval 1``): the latest
    value of each, and the peak of the stored-message count."""

    TOPICS = ("$SYS/broker/store/messages/count", "$SYS/broker/publish/messages/sent",
              "$SYS/broker/publish/messages/received", "$SYS/broker/clients/connected")

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.latest: dict[str, int] = {}
        self.peak_stored = 0
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.on_message = self._on_message
        client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 0) for t in self.TOPICS])
        client.username_pw_set(*tools_login(port))
        client.connect("127.0.0.1", port)
        client.loop_start()
        self._client = client
        self._lock = threading.Lock()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            value = int(msg.payload)
        except ValueError:
            return
        with self._lock:
            self.latest[msg.topic.rsplit("broker/", 1)[1]] = value
            if msg.topic.endswith("store/messages/count"):
                self.peak_stored = max(self.peak_stored, value)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.latest)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def mqtt_events(log_path: Path) -> dict:
    """The service's MQTT connects and disconnects (with reasons), from its JSON log."""
    connects, disconnects = 0, []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"mqtt connected"' in line:
            connects += 1
        elif '"mqtt disconnected"' in line or "mqtt network thread error" in line:
            try:
                rec = json.loads(line)
                disconnects.append(f"{rec.get('ts', rec.get('time', ''))} {rec.get('reason', rec.get('message'))}")
            except ValueError:
                disconnects.append(line[:200])
    return {"connects": connects, "reconnects": max(connects - 1, 0), "disconnects": disconnects}


def broker_log_about(broker_log: Path, client_prefix: str, limit: int = 20) -> list[str]:
    """The broker's own lines about the service's connection (timeouts, closes, reconnects)."""
    keys = ("exceeded timeout", "closed its connection", "disconnected", "New client connected", "Socket error")
    out = [line for line in broker_log.read_text(errors="replace").splitlines()
           if client_prefix in line and any(k in line for k in keys)]
    return out[:limit]


def rss_figures(samples: list[int], steady: list[int]) -> dict:
    """Max and median RSS of a phase against the steady phase's median and max."""
    steady_median, steady_max = statistics.median(steady), max(steady)
    return {
        "samples": len(samples),
        "rss_mb_max": max(samples) / MB,
        "rss_mb_median": statistics.median(samples) / MB,
        "ratio_max_to_steady_median": max(samples) / steady_median,
        "ratio_max_to_steady_max": max(samples) / steady_max,
    }
