"""The refusal metrics count refused messages and refused readings apart, and loadtest reads them."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from domain.messages import RefusedReading, Rejected, RejectReason
from ingest.metrics import record_refusals
from simulators.load import dead_letters_by_reason, parse_metrics
from store.dead_letters import StoreRefusal
from store.writer import WriteResult


def scrape() -> dict[str, float]:
    return parse_metrics(generate_latest(REGISTRY).decode())


def test_refused_messages_and_readings_are_counted_apart():
    before = scrape()
    whole = Rejected(RejectReason.BAD_ENCODING, "payload is not UTF-8", "yj/v1/E1/G1/up", b"\xff", 1)
    flood = Rejected.of_readings("yj/v1/E1/G1/up", b"{}", 1, "E1", "G1",
                                 [RefusedReading(0, "GHOST-0", RejectReason.UNKNOWN_SENSOR)],
                                 {RejectReason.UNKNOWN_SENSOR: 40_000}, 40_050, "reading 0: …")
    conflict = StoreRefusal(1, 1, 2.0, RejectReason.CONFLICTING_VALUE, 1, kept=1.0)
    record_refusals([whole, flood], WriteResult(50, 0, 2, True, (conflict,), capped_messages=3, capped_readings=7))
    after = scrape()
    assert dead_letters_by_reason(before, after) == {
        "bad_encoding messages": 1, "unknown_sensor readings": 40_000, "conflicting_value readings": 1}
    assert after["yujing_ingest_dead_letters_total"] - before.get("yujing_ingest_dead_letters_total", 0) == 2
    assert after["yujing_ingest_dead_letters_capped_total"] - before.get("yujing_ingest_dead_letters_capped_total", 0) == 3
