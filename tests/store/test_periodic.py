"""store.periodic: the one retry helper and the one periodic loop."""

from __future__ import annotations

import asyncio

import pytest

from domain.clock import now_us, utc_from_us
from store.periodic import retry_until_done, run_every


class _Flaky:
    def __init__(self, failures: int, error: type[BaseException] = ConnectionResetError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("down")
        return self.calls


async def _no_sleep(_s: float) -> None:
    await asyncio.sleep(0)


async def test_retry_until_done_retries_transient_errors_with_growing_waits() -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    step = _Flaky(failures=4)
    assert await retry_until_done("step", step, first_s=1.0, max_s=4.0, sleep=sleep) == 5
    assert step.calls == 5 and len(waits) == 4
    caps = [1.0, 2.0, 4.0, 4.0]
    assert all(cap / 2 <= w <= cap for w, cap in zip(waits, caps, strict=True))


async def test_retry_until_done_lets_other_errors_through() -> None:
    step = _Flaky(failures=1, error=ValueError)
    with pytest.raises(ValueError):
        await retry_until_done("step", step, sleep=_no_sleep)
    assert step.calls == 1


async def test_run_every_survives_transient_errors_and_stops_on_others() -> None:
    outcomes: list[BaseException | None] = [OSError("gone"), TimeoutError(), None, KeyError("bug")]
    calls = 0

    async def step() -> None:
        nonlocal calls
        outcome = outcomes[calls]
        calls += 1
        if outcome is not None:
            raise outcome

    with pytest.raises(KeyError):
        await run_every("step", 0.01, step, sleep=_no_sleep)
    assert calls == 4


def test_clock_is_integer_microseconds() -> None:
    ts = now_us()
    assert isinstance(ts, int)
    assert abs(utc_from_us(ts).timestamp() * 1e6 - ts) < 2
