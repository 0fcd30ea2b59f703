"""The outbox: retries with backoff, permanent failures, and crashes of the delivering process."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from collections import Counter

import pytest

from alerts.outbox import backoff_s
from alerts.records.outbox import NewNotification, enqueue
from tests.alerts.support import ALARM, RAISE, findings, make_policy, make_service, outbox
from tests.support.services import REPO


def test_backoff_is_capped_and_jittered():
    rng = random.Random(7)
    delays = [backoff_s(n, 1.0, 30.0, rng) for n in range(1, 12)]
    assert all(0.5 * min(30, 2 ** (n - 1)) <= d <= min(30, 2 ** (n - 1)) for n, d in zip(range(1, 12), delays))
    assert max(delays) <= 30.0


async def test_server_errors_are_retried_until_delivered(pool, clock, receiver):
    receiver.script.extend([(500, b"boom"), (503, b"busy"), (429, b"slow down")])
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.6, 1.5)]))
    await svc.tick()
    async with pool.acquire() as conn:
        for _ in range(4):
            await svc.deliver()
            clock.advance(10)
        [row] = await outbox(conn, "control-room")
    assert row["state"] == "delivered" and row["attempts"] == 4
    keys = {r["headers"]["idempotency-key"] for r in receiver.requests}
    assert len(receiver.requests) == 4 and len(keys) == 1


async def test_client_errors_fail_without_retry(pool, clock, receiver):
    receiver.script.append((400, b"bad request"))
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.6, 1.5)]))
    await svc.tick()
    await svc.deliver()
    clock.advance(60)
    await svc.deliver()
    async with pool.acquire() as conn:
        [row] = await outbox(conn, "control-room")
    assert row["state"] == "failed" and len(receiver.requests) == 1
    assert svc.deliverer.stats.failed == 1


async def test_gives_up_after_the_configured_time(pool, clock, receiver):
    receiver.default = (503, b"down")
    policy = make_policy(receiver.url, outbox={"give_up_after": "2m", "backoff_max": "30s"})
    svc = await make_service(None, policy, clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.6, 1.5)]))
    await svc.tick()
    for _ in range(20):
        await svc.deliver()
        clock.advance(31)
    async with pool.acquire() as conn:
        [row] = await outbox(conn, "control-room")
    assert row["state"] == "failed" and 3 <= row["attempts"] <= 10


def _worker(db_url: str, receiver_url: str, lease: str = "1s") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.alerts.outbox_worker", db_url, receiver_url, lease],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


async def _enqueue(pool, n: int, now_us: int) -> list[str]:
    rows = [NewNotification(idempotency_key=f"sensor:{i}:limit@1:control-room.webhook0", receiver="control-room",
                            channel="webhook0", channel_type="webhook",
                            payload={"idempotency_key": f"sensor:{i}:limit@1:control-room.webhook0", "n": i,
                                     "receiver": "control-room"},
                            alert_ids=(i,)) for i in range(n)]
    async with pool.acquire() as conn:
        await enqueue(conn, rows, now_us)
    return [r.idempotency_key for r in rows]


async def _wait(predicate, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.timeout(120)
async def test_kill_between_receipt_and_record_is_the_only_duplicate(pool, seeded, receiver):
    """SIGKILL the worker after the receiver accepted the message, before the row is marked."""
    [key] = await _enqueue(pool, 1, int(time.time() * 1e6))
    first = _worker(seeded, receiver.url)
    killed = []

    def kill_on_first(req):
        if not killed:
            first.kill()  # SIGKILL: the receipt is accepted, the worker never records it
            first.wait()
            killed.append(req)

    receiver.on_request = kill_on_first
    try:
        await _wait(lambda: killed)
        async with pool.acquire() as conn:
            [row] = await outbox(conn)
            assert row["state"] == "pending" and row["attempts"] == 1  # claimed, never marked
        second = _worker(seeded, receiver.url)
        try:
            await _wait(lambda: len(receiver.requests) == 2)
            async def delivered():
                async with pool.acquire() as conn:
                    return (await outbox(conn))[0]["state"] == "delivered"
            for _ in range(200):
                if await delivered():
                    break
                await asyncio.sleep(0.02)
        finally:
            second.kill()
            second.wait()
    finally:
        if first.poll() is None:
            first.kill()
    keys = [r["headers"]["idempotency-key"] for r in receiver.requests]
    assert keys == [key, key]  # one duplicate, carrying the same key: the receiver can drop it
    async with pool.acquire() as conn:
        [row] = await outbox(conn)
    assert row["state"] == "delivered" and row["attempts"] == 2


@pytest.mark.timeout(180)
async def test_repeated_kills_lose_nothing_and_duplicate_only_unrecorded_receipts(pool, seeded, receiver):
    n = 120
    keys = await _enqueue(pool, n, int(time.time() * 1e6))
    unrecorded: set[str] = set()
    received = lambda: {r["headers"]["idempotency-key"] for r in receiver.requests}  # noqa: E731
    for kill_after in (20, 50, 85):
        proc = _worker(seeded, receiver.url, lease="0.5s")
        try:
            await _wait(lambda: len(receiver.requests) >= kill_after)
        finally:
            proc.kill()
            proc.wait()
        async with pool.acquire() as conn:
            pending = {r["idempotency_key"] for r in await outbox(conn) if r["state"] == "pending"}
        unrecorded |= received() & pending  # accepted by the receiver, not yet recorded as delivered
    proc = _worker(seeded, receiver.url, lease="0.5s")
    try:
        async def all_delivered():
            async with pool.acquire() as conn:
                return all(r["state"] == "delivered" for r in await outbox(conn))
        deadline = time.monotonic() + 60
        while not await all_delivered():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    counts = Counter(r["headers"]["idempotency-key"] for r in receiver.requests)
    assert set(counts) == set(keys)  # nothing lost
    duplicated = {k for k, c in counts.items() if c > 1}
    assert duplicated <= unrecorded, duplicated - unrecorded
    print(f"\n{n} notifications, 3 SIGKILLs: {len(duplicated)} duplicates, all accepted-but-unrecorded")
