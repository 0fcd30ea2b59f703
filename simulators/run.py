"""The run loop: step the emitter in (scaled) real time and publish, until stopped.

:func:`run_simulation` is a blocking function for a thread, with a ``threading.Event`` to stop
it; :func:`run_simulation_async` runs it beside an asyncio service (``yujing demo``) and stops it
when cancelled. "Now" comes from the injected ``clock``; the simulated time is
``start_s + (clock() − wall0) · speed``. When the publisher falls behind (more than
``max_pending`` unacknowledged messages) generation pauses: nothing is dropped, the lag grows and
is reported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence

from simulators.fleet import Fleet
from simulators.gateway import Emitter, EmitterStats
from simulators.publisher import Publisher, PublisherOptions, PublisherStats
from simulators.scenarios import GroundTruth, ScenarioSpec, bind

log = logging.getLogger(__name__)

MAX_STEP_S = 1.0  # simulated seconds generated per iteration at most (bounds one step's events)


@dataclasses.dataclass(frozen=True, slots=True)
class RunOptions:
    duration_s: float | None = None  # wall seconds; None = until stopped
    speed: float = 1.0  # simulated seconds per wall second
    tick_s: float = 0.05  # longest wait between steps
    start_s: float | None = None  # simulated start, epoch seconds; default: now
    recur_s: float | None = None  # start the next scenario every recur_s simulated seconds (demo)
    hold_s: float = 900.0  # an incident ends this long after its deadline (demo)
    drain_s: float = 10.0


@dataclasses.dataclass(slots=True)
class RunReport:
    wall_s: float  # whole run including the final drain and close
    run_s: float  # the generating loop only
    sim_s: float
    max_lag_s: float  # largest delay of the simulated clock behind (scaled) wall time
    final_lag_s: float
    acked_in_run: int  # acknowledgements received before the drain started
    emitter: EmitterStats
    publisher: PublisherStats
    truths: list[GroundTruth]
    drained: bool

    @property
    def readings_per_s(self) -> float:
        return self.publisher.readings / self.run_s if self.run_s > 0 else 0.0


def run_simulation(
    fleet: Fleet,
    publisher_options: PublisherOptions,
    *,
    scenarios: Sequence[ScenarioSpec] = (),
    seed: int = 0,
    options: RunOptions = RunOptions(),
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
    on_incident: Callable[[GroundTruth], None] | None = None,
) -> RunReport:
    stop = stop or threading.Event()
    wall0 = clock()
    sim0 = wall0 if options.start_s is None else options.start_s
    emitter = Emitter(fleet, sim0, seed)
    truths: list[GroundTruth] = []
    active: list = []  # (incident, end_s)
    next_scenario_s = sim0
    k = 0

    def start_scenario(at_s: float) -> None:
        nonlocal k
        spec = scenarios[k % len(scenarios)]
        inc = bind(spec, fleet, at_s, seed + k)
        k += 1
        emitter.add_incident(inc)
        active.append((inc, inc.truth.deadline_s + options.hold_s))
        truths.append(inc.truth)
        log.info("scenario %s started: %s", spec.name, inc.truth)
        if on_incident:
            on_incident(inc.truth)

    if scenarios and options.recur_s is None:
        for _ in scenarios:
            start_scenario(sim0)
    pub = Publisher(fleet, publisher_options, clock=time.monotonic)
    pub.connect()
    sim_done = sim0
    max_lag = final_lag = 0.0
    run_s, acked_in_run = 0.0, 0
    try:
        while not stop.is_set():
            elapsed = clock() - wall0
            if options.duration_s is not None and elapsed >= options.duration_s:
                break
            if pub.pending > publisher_options.max_pending:
                pub.poll(0.01)
                continue
            sim_now = sim0 + elapsed * options.speed
            target = min(sim_now, sim_done + MAX_STEP_S)
            final_lag = (sim_now - target) / options.speed
            max_lag = max(max_lag, final_lag)
            if scenarios and options.recur_s is not None and target >= next_scenario_s:
                start_scenario(target)
                next_scenario_s = target + options.recur_s
            for inc, end_s in list(active):
                if options.recur_s is not None and target >= end_s:
                    emitter.remove_incident(inc)
                    active.remove((inc, end_s))
            pub.handle(emitter.step(target))
            sim_done = target
            ahead_s = (emitter.next_event_s() - sim0) / options.speed - (clock() - wall0)
            pub.poll(max(0.0, min(options.tick_s, ahead_s)))
        run_s, acked_in_run = clock() - wall0, pub.stats.acked
    finally:
        drained = pub.close(options.drain_s)
        wall = clock() - wall0
    return RunReport(wall, run_s, sim_done - sim0, max_lag, final_lag, acked_in_run, emitter.stats, pub.stats,
                     truths, drained)


async def run_simulation_async(fleet: Fleet, publisher_options: PublisherOptions, **kwargs) -> RunReport:
    """Run in a worker thread; on cancellation set the stop event and wait for a clean close."""
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, functools.partial(run_simulation, fleet, publisher_options, stop=stop, **kwargs))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait([fut], timeout=30.0)
        raise
