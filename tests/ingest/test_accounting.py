"""Readings in = stored + refused, for every input, through the decoder and the real write path.

Random bursts (seeded; the seed of a failing case is in its id) mix what breaks accounting: readings
a day ahead of the receive time, gateway clocks running fast, repeats in a message with the same
or another value, redeliveries with changed values, unknown sensors and non-numbers. Each burst
is decoded and committed to PostgreSQL; then

- every reading sent is inserted, a duplicate, or refused with a reason (decoder or writer);
- a duplicate is only ever the same reading again (sensor, device time and value): a distinct
  reading is never counted as one (100 of 200 future readings were, before);
- the table holds exactly the inserted rows.
"""

from __future__ import annotations

import json
import random

import asyncpg
import pytest

from domain.messages import RawMessage
from ingest.decode import DecodeLimits, Decoder
from store.registry_records import import_registry, load_snapshot
from store.registry_file import parse_registry_file
from store.writer import ReadingWriter, WriteBatch

NOW_MS = 1_764_400_000_000
TOPIC = "yj/v1/E1/G1/up"
SENSORS = ["S1", "S2", "S3"]
REGISTRY = """
enterprises: [{id: E1, name: 矿, region: "360100", industry: coal_mine}]
gateways:    [{id: G1, enterprise: E1}]
sensors:     [{id: S1, gateway: G1, kind: methane}, {id: S2, gateway: G1, kind: methane},
              {id: S3, gateway: G1, kind: methane}]
"""
LIMITS = DecodeLimits(max_payload_bytes=100_000, dead_letter_payload_bytes=4096, clock_skew_tolerance_s=300)
CASES = 40


def burst(rng: random.Random) -> list[tuple[int, list[dict]]]:
    """(batch ts, readings) per message; some messages are redelivered, some with changed values."""
    messages = []
    for _ in range(rng.randint(1, 6)):
        batch_ts = NOW_MS + rng.choice([0, 0, -60_000, 3_600_000])  # on time, late, clock an hour fast
        readings = []
        for _ in range(rng.randint(0, 12)):
            r = {"s": rng.choice(SENSORS + ["GHOST"]), "v": rng.choice([1.0, 2.0, 3.0, float("nan")])}
            if rng.random() < 0.7:
                r["ts"] = batch_ts + rng.choice([0, -1000, -2000, 86_400_000, 86_401_000, 86_402_000])
            readings.append(r)
        messages.append((batch_ts, readings))
        if rng.random() < 0.3:  # a redelivery, perhaps with a value changed
            again = [dict(r) for r in readings]
            if again and rng.random() < 0.5:
                rng.choice(again)["v"] = 9.0
            messages.append((batch_ts, again))
    return messages


def payload(batch_ts: int, readings: list[dict]) -> bytes:
    return json.dumps({"ts": batch_ts, "readings": readings}).encode()


def exact_repeats(messages) -> int:
    """Readings equal to an earlier one in sensor, device time and value (naive reference)."""
    seen, repeats = set(), 0
    for batch_ts, readings in messages:
        for r in readings:
            key = (r["s"], r.get("ts", batch_ts), r["v"])
            if r["v"] == r["v"] and r["s"] != "GHOST":  # NaN and unknown sensors are refused
                repeats += key in seen
                seen.add(key)
    return repeats


@pytest.fixture
async def setup(db_url, db):
    await import_registry(db, parse_registry_file(REGISTRY))
    registry = await load_snapshot(db, lambda industry: 120)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    yield Decoder(registry, LIMITS), ReadingWriter(pool)
    await pool.close()


async def test_readings_in_equal_stored_plus_refused(setup, db):
    decoder, writer = setup
    for case in range(CASES):
        seed = 1000 + case
        rng = random.Random(seed)
        await db.execute("DELETE FROM readings; DELETE FROM dead_letters; DELETE FROM dead_letter_overflow")
        bursts = [burst(rng) for _ in range(rng.randint(1, 3))]
        sent = inserted = duplicates = refused = 0
        received_us = NOW_MS * 1000
        for messages in bursts:
            raw = [RawMessage(TOPIC, payload(t, rs), i + 1, received_us + i) for i, (t, rs) in enumerate(messages)]
            chunk = decoder.decode(raw)
            result = await writer.write(WriteBatch(chunk.readings, chunk.rejected, chunk.statuses, chunk.mids,
                                                   chunk.messages))
            sent += sum(len(rs) for _, rs in messages)
            inserted += result.inserted
            duplicates += result.duplicates
            refused += sum(r.refused for r in chunk.rejected) + len(result.refused)
            received_us += 1_000_000
        assert sent == inserted + duplicates + refused, f"seed {seed}"
        assert duplicates <= exact_repeats([m for b in bursts for m in b]), f"seed {seed}"
        assert await db.fetchval("SELECT count(*) FROM readings") == inserted, f"seed {seed}"
        # Listed in dead letters, or counted beyond the per-gateway cap: never lost.
        kept = await db.fetchval("SELECT coalesce(sum(refused), 0) FROM dead_letters")
        counted = await db.fetchval("SELECT coalesce(sum(readings), 0) FROM dead_letter_overflow")
        assert kept + counted == refused, f"seed {seed}"
