"""Every lifecycle change reaches the gateway's MQTT alerts topic and the live feed (issue 10 §7).

Against the real broker: the service publishes through a paho client, a second client
subscribed to ``yj/v1/+/+/alerts`` records what a gateway would read. Fake clock.
"""

from __future__ import annotations

import asyncio
import json
import threading

import paho.mqtt.client as mqtt

from alerts import transitions
from alerts.feed import AlertFeed
from alerts.mqtt_schema import SCHEMA
from tests.support.services import COLLECTOR_LOGIN
from tests.alerts.support import ALARM, CLEAR, CRITICAL, RAISE, UPDATE, findings, make_policy, make_service


class Gateway:
    """A subscriber on the alerts topics and the service's publisher, on the test's broker."""

    def __init__(self, broker) -> None:
        port = broker.port
        self.got: list[tuple[str, dict]] = []
        self.ready = threading.Event()
        self.sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-gw-sub")
        self.sub.on_connect = lambda c, u, f, rc, p=None: (c.subscribe("yj/v1/+/+/alerts", qos=1), self.ready.set())
        self.sub.on_message = lambda c, u, m: self.got.append((m.topic, json.loads(m.payload)))
        self.sub.username_pw_set(*broker.tools_login)  # reads every gateway's topics
        self.sub.connect("127.0.0.1", port)
        self.sub.loop_start()
        self.pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-gw-pub")
        self.pub.username_pw_set(*broker.login(COLLECTOR_LOGIN))  # the service's login writes alerts
        self.pub.connect("127.0.0.1", port)
        self.pub.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.pub.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=5)
        if not info.is_published():
            raise RuntimeError("not acknowledged by the broker")

    async def wait_for(self, n: int, timeout_s: float = 5.0) -> list[tuple[str, dict]]:
        for _ in range(int(timeout_s / 0.02)):
            if len(self.got) >= n:
                break
            await asyncio.sleep(0.02)
        return list(self.got)

    def close(self) -> None:
        for c in (self.sub, self.pub):
            c.loop_stop()
            c.disconnect()


def _check_schema(msg: dict) -> None:
    for key in SCHEMA["required"]:
        assert key in msg, key
    assert msg["schema"] == SCHEMA["properties"]["schema"]["const"]


async def test_every_lifecycle_change_reaches_the_gateway_topic_and_the_feed(pool, clock, receiver, broker):
    gw = Gateway(broker)
    feed = AlertFeed()
    sub = feed.subscribe()
    try:
        assert gw.ready.wait(5)
        await asyncio.sleep(0.2)
        svc = await make_service(None, make_policy(receiver.url), clock, pool=pool, mqtt_publish=gw.publish, feed=feed)
        await svc.tick()  # the feed starts at the journal's head

        async def step(n: int):
            await svc.tick()
            await svc.deliver()
            got = await gw.wait_for(n)
            assert len(got) == n, [m["change"] for _, m in got]
            return got[-1][1]

        await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.62, 1.5)]))  # orange
        m = await step(1)
        assert (m["state"], m["grade"], m["change"]) == ("firing", "orange", None)
        alert_id = m["id"]
        async with pool.acquire() as conn:
            clock.advance(1)
            await transitions.acknowledge(conn, alert_id, "张三", "已派人", now_us=clock.us)
            m = await step(2)
            assert (m["state"], m["change"], m["change_actor"], m["acknowledged_by"]) == (
                "acknowledged", "acknowledged", "张三", "张三")
            clock.advance(1)
            await transitions.assign(conn, alert_id, "张三", "李四", now_us=clock.us)
            m = await step(3)
            assert m["change"] == "assigned"
            clock.advance(1)
            await transitions.shelve(conn, alert_id, "李四", "检修", clock.us + 600_000_000, now_us=clock.us)
            m = await step(4)
            assert m["change"] == "shelved"
            clock.advance(1)
            await transitions.unshelve(conn, alert_id, "李四", now_us=clock.us)
            m = await step(5)
            assert m["change"] == "unshelved"
            clock.advance(1)
            await svc.handle(findings([(1, "limit", UPDATE, CRITICAL, clock.t, 2.5, 1.5)]))  # red: told at once
            m = await step(6)
            assert (m["grade"], m["state"]) == ("red", "firing")
            clock.advance(1)
            await svc.handle(findings([(1, "limit", CLEAR, CRITICAL, clock.t, 0.3, 1.5)]))
            m = await step(7)
            assert m["state"] == "latched"
            clock.advance(1)
            await transitions.reset_latch(conn, alert_id, "李四", "复位", now_us=clock.us)
            m = await step(8)
            assert m["state"] == "resolved"
            clock.advance(1)
            await transitions.close(conn, alert_id, "李四", "结案", now_us=clock.us)
            m = await step(9)
            assert (m["state"], m["change"]) == ("closed", "closed")

            clock.advance(1)  # an operator's resolve (the sensor was removed)
            await svc.handle(findings([(2, "limit", RAISE, ALARM, clock.t, 1.62, 1.5)]))
            m = await step(10)
            second = m["id"]
            clock.advance(1)
            await transitions.resolve(conn, second, "王五", "传感器已拆除", force=True, now_us=clock.us)
            m = await step(11)
            assert (m["id"], m["state"]) == (second, "resolved")
            await svc.tick()
            await svc.deliver()
    finally:
        gw.close()
    got = gw.got
    assert len(got) == 11  # nothing twice
    for topic, msg in got:
        assert topic == "yj/v1/E001/G001/alerts"
        _check_schema(msg)
    keys = [m["idempotency_key"] for _, m in got]
    assert len(set(keys)) == len(keys)
    assert [m["version"] for _, m in got[:9]] == sorted(m["version"] for _, m in got[:9])
    events = []
    while not sub.queue.empty():
        events.append(sub.queue.get_nowait())
    actions = [e["action"] for e in events if e["alert_id"] == alert_id]
    for a in ("opened", "acknowledged", "assigned", "shelved", "unshelved", "grade_raised", "latched",
              "latch_reset", "closed"):
        assert a in actions, (a, actions)
    assert "resolved" in [e["action"] for e in events if e["alert_id"] == second]


async def test_state_updates_are_written_once_across_passes(pool, clock, receiver):
    """A change is put into the outbox once, whatever the number of passes (told_version)."""
    sent = []
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool,
                             mqtt_publish=lambda t, p: sent.append((t, json.loads(p))))
    await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.62, 1.5)]))
    await svc.tick()
    async with pool.acquire() as conn:
        [aid] = [r["id"] for r in await conn.fetch("SELECT id FROM alerts")]
        await transitions.acknowledge(conn, aid, "张三", now_us=clock.us)
        await transitions.comment(conn, aid, "张三", "现场已通风", now_us=clock.us)  # not published
        for _ in range(3):
            await svc.tick()
        rows = await conn.fetch("SELECT payload::text FROM alert_outbox WHERE channel_type = 'mqtt' ORDER BY id")
        version = await conn.fetchval("SELECT version FROM alerts WHERE id = $1", aid)
    msgs = [json.loads(r[0])["message"] for r in rows]
    assert [m["change"] for m in msgs] == [None, "acknowledged"]
    assert msgs[1]["version"] == version  # the alert's latest state, reported as the acknowledgement
