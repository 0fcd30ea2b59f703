"""Transactional outbox: notifications are rows written in the transaction that decided them,
delivered at least once by a worker holding a lease, retried with capped jittered backoff.

Crash semantics. A worker claims rows by setting a lease (``lease_until_us``), sends, then marks
them delivered. If it dies before sending, the lease expires and another pass sends the row: no
loss, no duplicate. If it dies after the receiver accepted the message but before the row was
marked, the row is sent again with the same ``idempotency_key``: this is the only duplicate a
crash can cause, and receivers can drop it by the key (``Idempotency-Key`` header, e-mail
``Message-ID``). Rows are never deleted by delivery; ``failed`` rows (permanent errors, or still
failing after ``give_up_after``) stay for inspection and are counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from typing import Any

import asyncpg

from alerts.channels import DeliveryError, Sender
from alerts.policy import (
    Channel,
    DingTalkChannel,
    Policy,
    WebhookChannel,
    WeComChannel,
)
from alerts.records.outbox import Claimed, claim, mark_delivered, mark_failed, mark_retry
from domain.clock import Clock
from store import secretbox
from store.errors import TRANSIENT_ERRORS
from store.periodic import Sleep, run_every

log = logging.getLogger("yujing.alerts.outbox")


def backoff_s(attempts: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Capped exponential backoff with jitter in [½, 1] of the capped delay."""
    capped = min(max_s, initial_s * (2 ** max(0, attempts - 1)))
    return capped * (0.5 + 0.5 * rng.random())


def contact_channel(target: dict[str, Any]) -> Channel | None:
    """A channel for a registry contact (escalation to an enterprise's safety officer)."""
    # the URL (a robot's carries its access token) and the signing secret are stored encrypted and
    # decrypted only here, as they are sent
    try:
        url = target.get("url") or secretbox.decrypt_optional(target.get("url_enc"))
        secret = target.get("secret") or secretbox.decrypt_optional(target.get("secret_enc"))
    except secretbox.SecretKeyError as exc:
        log.error("contact %s: %s", target.get("role"), exc)
        return None
    if target.get("type") == "dingtalk" and url:
        return DingTalkChannel(name="contact", url=url, secret=secret)
    if target.get("type") == "wecom" and url:
        return WeComChannel(name="contact", url=url)
    if target.get("type") == "webhook" and url:
        return WebhookChannel(name="contact", url=url)
    return None


@dataclasses.dataclass
class DeliveryStats:
    delivered: int = 0
    retried: int = 0
    failed: int = 0


class Deliverer:
    """Delivers due outbox rows; one pass per :meth:`deliver_due`, forever in :meth:`run`."""

    def __init__(self, pool: asyncpg.Pool, policy: Policy, sender: Sender, clock: Clock,
                 owner: str, rng: random.Random | None = None) -> None:
        self.pool = pool
        self.policy = policy
        self.sender = sender
        self.clock = clock
        self.owner = owner
        self.rng = rng or random.Random()
        self.stats = DeliveryStats()
        self._last_error: dict[str, str] = {}

    def _channel(self, row: Claimed) -> Channel | None:
        if row.channel.startswith("contact:"):
            return contact_channel(row.target or {})
        receiver = self.policy.receivers.get(row.receiver)
        return receiver.channel(row.channel) if receiver else None

    async def deliver_due(self) -> int:
        """Claim what is due and deliver it concurrently; returns how many rows were attempted."""
        async with self.pool.acquire() as conn:
            rows = await claim(conn, self.owner, self.clock(), self.policy.outbox.lease_s,
                               self.policy.outbox.concurrency * 4)
        if not rows:
            return 0
        sem = asyncio.Semaphore(self.policy.outbox.concurrency)

        async def one(row: Claimed) -> None:
            async with sem:
                await self._deliver(row)

        await asyncio.gather(*(one(r) for r in rows))
        return len(rows)

    async def _deliver(self, row: Claimed) -> None:
        channel = self._channel(row)
        error: DeliveryError | None = None
        if channel is None:
            error = DeliveryError(f"receiver {row.receiver!r} channel {row.channel!r} is not in the policy", False)
        else:
            try:
                await self.sender.send(channel, row.payload)
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # one notification: a bug in a channel must not stop the others
                log.exception("channel %s raised unexpectedly for %s", row.channel_type, row.idempotency_key)
                error = DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
        now = self.clock()
        async with self.pool.acquire() as conn:
            if error is None:
                await mark_delivered(conn, row.id, self.owner, now)
                self.stats.delivered += 1
                self._last_error.pop(f"{row.receiver}/{row.channel}", None)
                return
            where = f"{row.receiver}/{row.channel}"
            if self._last_error.get(where) != str(error):  # log when the error changes, not every attempt
                log.warning("notification %s via %s failed (%s): %s", row.idempotency_key, where,
                            "will retry" if error.retryable else "permanent", error)
                self._last_error[where] = str(error)
            too_old = now - row.created_us >= self.policy.outbox.give_up_after_s * 1e6
            if error.retryable and not too_old:
                delay = backoff_s(row.attempts, self.policy.outbox.backoff_initial_s,
                                  self.policy.outbox.backoff_max_s, self.rng)
                if error.retry_after_s:
                    delay = max(delay, min(error.retry_after_s, self.policy.outbox.backoff_max_s))
                await mark_retry(conn, row.id, self.owner, now + int(delay * 1e6), str(error))
                self.stats.retried += 1
            else:
                await mark_failed(conn, row.id, self.owner, str(error))
                self.stats.failed += 1

    async def run(self, wake: asyncio.Event | None = None, idle_s: float = 0.5) -> None:
        """Deliver until cancelled; ``wake`` shortens the idle wait when new rows are enqueued."""
        await run_every("outbox pass", idle_s, self._drain, sleep=woken_or_after(wake))

    async def _drain(self) -> None:
        """Deliver what is due until nothing is; an unexpected error ends this pass, never the loop."""
        try:
            while await self.deliver_due():
                pass
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            log.exception("outbox pass failed unexpectedly")


def woken_or_after(wake: asyncio.Event | None) -> Sleep:
    """A sleep for :func:`store.periodic.run_every` that ends early when ``wake`` is set (and clears it)."""

    async def sleep(interval_s: float) -> None:
        if wake is None:
            await asyncio.sleep(interval_s)
            return
        try:
            await asyncio.wait_for(wake.wait(), interval_s)
        except TimeoutError:
            pass
        wake.clear()

    return sleep
