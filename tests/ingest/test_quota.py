"""Per-gateway quotas: beyond its messages or bytes per minute a gateway's messages are refused
(`over_quota`) and counted; a quiet gateway keeps credit for its backlog; others are unaffected."""

from __future__ import annotations

from domain.messages import RejectReason
from ingest.decode import DecodeLimits, Decoder
from tests.ingest.test_decode import NOW_US, REGISTRY, msg, up

MINUTE_US = 60_000_000


def limits(messages: int = 0, bytes_: int = 0, burst_minutes: float = 1.0) -> DecodeLimits:
    return DecodeLimits(10_000, 100, 300, gateway_messages_per_minute=messages, gateway_bytes_per_minute=bytes_,
                        quota_burst_minutes=burst_minutes)


def at(m, received_us: int):
    return msg(m.topic, m.payload, m.mid, received_us)


def test_messages_beyond_the_quota_are_refused_and_others_gateways_pass():
    d = Decoder(REGISTRY, limits(messages=10))
    flood = [at(up("E1", "G1", ["CH4-01"], [float(i)], ts_ms=NOW_US // 1000 - i, mid=i), NOW_US) for i in range(15)]
    other = at(up("E1", "G2", ["T-01"], [20.0], mid=99), NOW_US)
    c = d.decode(flood + [other])
    assert len(c.readings) == 11  # ten of the flood, and the other gateway's
    assert [r.reason for r in c.rejected] == [RejectReason.OVER_QUOTA] * 5
    assert "10 messages per minute" in c.rejected[0].detail and c.rejected[0].gateway == "G1"
    # Half a minute later, half the quota has come back.
    later = [at(up("E1", "G1", ["CH4-01"], [1.0], ts_ms=NOW_US // 1000 + i, mid=i), NOW_US + MINUTE_US // 2)
             for i in range(1, 8)]
    assert len(d.decode(later).readings) == 5


def test_bytes_beyond_the_quota_are_refused():
    m = up("E1", "G1", ["CH4-01"], [1.0])
    d = Decoder(REGISTRY, limits(bytes_=3 * len(m.payload)))
    c = d.decode([at(up("E1", "G1", ["CH4-01"], [1.0], ts_ms=NOW_US // 1000 - i, mid=i), NOW_US) for i in range(5)])
    assert len(c.readings) == 3 and [r.reason for r in c.rejected] == [RejectReason.OVER_QUOTA] * 2
    assert "payload bytes per minute" in c.rejected[0].detail


def test_a_quiet_gateway_has_credit_for_its_backlog():
    d = Decoder(REGISTRY, limits(messages=10, burst_minutes=60))
    hour_ago = NOW_US - 3600 * 1_000_000
    spent = d.decode([at(up("E1", "G1", ["CH4-01"], [1.0], ts_ms=hour_ago // 1000 - i, mid=i), hour_ago)
                      for i in range(700)])  # the whole credit used up, then an hour of silence
    assert len(spent.readings) == 600
    backlog = [at(up("E1", "G1", ["CH4-01"], [1.0], ts_ms=NOW_US // 1000 - 60_000 * i, mid=i), NOW_US)
               for i in range(1, 500)]
    assert len(d.decode(backlog).readings) == 499  # 499 ≤ 60 minutes x 10
