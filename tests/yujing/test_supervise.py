"""One failing stage never ends the service: it is logged and started again."""

from __future__ import annotations

import asyncio
import logging

from yujing.service import supervise


async def test_a_failing_stage_is_started_again_and_its_neighbours_keep_running(caplog):
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")

    ticks = 0

    async def intake() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    caplog.set_level(logging.ERROR)
    async with asyncio.TaskGroup() as tg:
        neighbour = tg.create_task(intake())
        await asyncio.wait_for(tg.create_task(supervise("flaky", flaky, restart_max_s=0.01)), 5)
        assert not neighbour.done() and ticks > 0
        neighbour.cancel()
    assert len(runs) == 3
    assert [r.getMessage() for r in caplog.records].count("stage failed; starting it again") == 2


async def test_cancelling_a_supervised_stage_is_not_a_failure():
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(supervise("forever", forever))
    await started.wait()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert task.cancelled()
