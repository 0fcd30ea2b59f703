"""Colours of places: assessed (registry) and live (open alerts) kept apart; dynamic = the higher."""

from __future__ import annotations

from alerts import places, transitions
from tests.alerts.support import ALARM, CLEAR, NOTICE, RAISE, findings, make_policy, make_service


async def test_place_colours_follow_alerts(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    async with pool.acquire() as conn:
        e1 = await places.place_colour(conn, "enterprise", "E001")
        assert (e1.assessed, e1.live, e1.dynamic, e1.open_alerts) == ("yellow", None, "yellow", 0)
        await svc.handle(findings([(4, "limit", RAISE, ALARM, clock.t, 60, 50)]))  # E002 (东湖区): orange
        await svc.handle(findings([(1, "ttt", RAISE, NOTICE, clock.t, 0.8, 1.0)]))  # E001: blue
        e1 = await places.place_colour(conn, "enterprise", "E001")
        assert (e1.assessed, e1.live, e1.dynamic) == ("yellow", "blue", "yellow")
        county = await places.place_colour(conn, "region", "360102")
        city = await places.place_colour(conn, "region", "360100")
        province = await places.place_colour(conn, "region", "360000")
        assert (county.assessed, county.live, county.dynamic) == ("orange", "orange", "orange")
        assert (city.assessed, city.live, city.dynamic, city.open_alerts) == ("orange", "orange", "orange", 2)
        assert province.live == "orange" and province.open_alerts == 2
        await svc.handle(findings([(6, "over_range", RAISE, ALARM, clock.t, 40, 40)]))  # E001 roadway: red
        city = await places.place_colour(conn, "region", "360100")
        assert (city.assessed, city.live, city.dynamic) == ("orange", "red", "red")
        jdz = await places.place_colour(conn, "region", "360200")
        assert (jdz.assessed, jdz.live, jdz.dynamic) == ("blue", None, "blue")
        # the red alert clears but latches: it still colours the map until reset
        await svc.handle(findings([(6, "over_range", CLEAR, ALARM, clock.t + 1, 0.2, 40)]))
        assert (await places.place_colour(conn, "enterprise", "E001")).live == "red"
        await transitions.reset_latch(conn, 3, "调度员", now_us=clock.us)
        e1 = await places.place_colour(conn, "enterprise", "E001")
        assert (e1.live, e1.dynamic) == ("blue", "yellow")
        cities = await places.region_colours(conn, level="city")
        assert {c.id for c in cities} >= {"360100", "360200"}
        inside = await places.enterprise_colours(conn, region="360100")
        assert {e.id for e in inside} == {"E001", "E002"}
