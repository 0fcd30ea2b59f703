"""Prometheus metrics of the ingest stage (served on /metrics by the API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from domain.messages import Rejected

if TYPE_CHECKING:
    from store.writer import WriteResult

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300)

messages = Counter("yujing_ingest_messages_total", "MQTT messages taken from the broker")
readings_committed = Counter("yujing_ingest_readings_committed_total", "Readings stored (new rows)")
readings_duplicate = Counter(
    "yujing_ingest_readings_duplicate_total", "Readings already stored (redelivery) or repeated in a batch"
)
refused_messages = Counter(
    "yujing_ingest_refused_messages_total", "Messages refused whole, each kept as one dead letter", ["reason"]
)
refused_readings = Counter(
    "yujing_ingest_refused_readings_total",
    "Readings refused (listed in their message's dead letter, or refused by the write path)", ["reason"],
)
dead_letters = Counter("yujing_ingest_dead_letters_total", "Dead-letter rows written (one per refused message)")
dead_letters_capped = Counter(
    "yujing_ingest_dead_letters_capped_total",
    "Dead letters beyond the per-gateway cap: counted in dead_letter_overflow instead of written",
)
batches = Counter("yujing_ingest_batches_total", "Write transactions committed", ["path"])
write_retries = Counter("yujing_ingest_write_retries_total", "Write attempts that failed and were retried")
commit_seconds = Histogram("yujing_ingest_commit_seconds", "Time to commit one batch", buckets=LAG_BUCKETS)
ingest_lag = Histogram(
    "yujing_ingest_lag_seconds", "From receipt by yujing to commit (sampled readings)", buckets=LAG_BUCKETS
)
end_to_end_lag = Histogram(
    "yujing_ingest_end_to_end_lag_seconds",
    "From the reading's own time to commit (sampled readings; includes gateway delay)",
    buckets=LAG_BUCKETS,
)
queue_depth = Gauge("yujing_ingest_queue_batches", "Decoded batches waiting for a writer")
inbox_depth = Gauge("yujing_ingest_inbox_messages", "Messages received and not yet decoded")
unacked = Gauge("yujing_ingest_unacknowledged_messages", "Messages taken and not yet acknowledged")
mqtt_connected = Gauge("yujing_mqtt_connected", "1 while the collector's MQTT session is connected")
database_up = Gauge("yujing_database_up", "0 while writes to the database fail")


def record_refusals(rejected: Sequence[Rejected], result: WriteResult) -> None:
    """Count a committed batch's refusals: messages refused whole and readings refused apart, the
    dead-letter rows written and those beyond the cap."""
    for r in rejected:
        if r.whole_message:
            refused_messages.labels(r.reason.value).inc()
        for reason, n in r.reasons:
            refused_readings.labels(reason.value).inc(n)
    for x in result.refused:
        refused_readings.labels(x.reason.value).inc()
    dead_letters.inc(result.dead_letters)
    if result.capped_messages:
        dead_letters_capped.inc(result.capped_messages)
