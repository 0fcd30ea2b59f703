"""Each channel against a local receiver that checks its wire format."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import json
import threading
import time

import paho.mqtt.client as mqtt
from aiosmtpd.controller import Controller

from alerts.mqtt_schema import SCHEMA
from tests.alerts.support import ALARM, RAISE, findings, make_policy, make_service, outbox
from tests.support.services import free_port

SECRET = "SEC0123456789abcdef"


def policy_with(receiver_url: str, **channels):
    from alerts.policy import from_config
    from tests.alerts.support import policy_doc

    doc = policy_doc(receiver_url)
    doc["receivers"][0] = {"name": "control-room", **channels}
    return from_config(doc)


async def run_once(pool, clock, policy, mqtt_publish=None):
    svc = await make_service(None, policy, clock, pool=pool, mqtt_publish=mqtt_publish)
    await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.62, 1.5)]))  # orange, group_wait 0
    await svc.tick()
    await svc.deliver()
    return svc


def dingtalk_check(req):
    ts = req["query"].get("timestamp")
    sign = req["query"].get("sign")
    if ts is None or sign is None:
        return 200, b'{"errcode":310000,"errmsg":"sign not match"}'
    digest = hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    if sign != expected or abs(int(ts) / 1000 - time.time()) > 3600:  # DingTalk allows one hour
        return 200, b'{"errcode":310000,"errmsg":"sign not match"}'
    body = json.loads(req["body"])
    ok = (body.get("msgtype") == "markdown" and body["markdown"]["title"] and body["markdown"]["text"]
          and body["at"]["atMobiles"] == ["13800000000"] and "@13800000000" in body["markdown"]["text"])
    return 200, (b'{"errcode":0,"errmsg":"ok"}' if ok else b'{"errcode":40035,"errmsg":"bad body"}')


async def test_generic_webhook(pool, clock, receiver):
    await run_once(pool, clock, policy_with(receiver.url, webhook=[{"url": receiver.url + "/hook",
                                                                    "headers": {"X-Token": "t1"}}]))
    [req] = receiver.requests
    body = json.loads(req["body"])
    assert req["path"] == "/hook" and req["headers"]["x-token"] == "t1"
    assert req["headers"]["content-type"].startswith("application/json")
    assert req["headers"]["idempotency-key"] == body["idempotency_key"]
    assert body["schema"] == "yujing.notification/1" and body["status"] == "firing" and body["grade"] == "orange"
    [a] = body["alerts"]
    assert a["message"] == "【橙色预警】南昌市 某煤矿 采煤工作面 甲烷 1.62%VOL ≥ 断电值 1.5%VOL，持续 0 秒"
    assert a["requirement"].startswith("处置要求：依《煤矿安全规程》切断")
    assert a["idempotency_key"] == "zone:1:methane#1@1"
    async with pool.acquire() as conn:
        assert [r["state"] for r in await outbox(conn)] == ["delivered"]


async def test_english_messages(pool, clock, receiver):
    from tests.alerts.support import policy_doc
    from alerts.policy import from_config

    doc = policy_doc(receiver.url, language="en")
    doc["receivers"][0] = {"name": "control-room", "webhook": [{"url": receiver.url}]}
    await run_once(pool, clock, from_config(doc))
    [a] = json.loads(receiver.requests[0]["body"])["alerts"]
    assert a["message"] == "[ORANGE WARNING]南昌市 某煤矿 采煤工作面 methane 1.62 %VOL ≥ power-cut setpoint 1.5 %VOL, for 0 s"


async def test_dingtalk_signed_markdown(pool, clock, receiver):
    receiver.default = (200, dingtalk_check)
    url = receiver.url + "/robot/send?access_token=abc"
    clock.t = time.time()  # DingTalk checks the timestamp against its own clock
    await run_once(pool, clock, policy_with(receiver.url, dingtalk=[
        {"url": url, "secret": SECRET, "at_mobiles": ["13800000000"]}]))
    [req] = receiver.requests
    assert req["query"]["access_token"] == "abc"
    async with pool.acquire() as conn:
        assert [r["state"] for r in await outbox(conn)] == ["delivered"]
    body = json.loads(req["body"])
    assert body["markdown"]["text"].startswith("### 【橙色预警】")


async def test_dingtalk_wrong_secret_is_not_retried(pool, clock, receiver):
    receiver.default = (200, dingtalk_check)
    clock.t = time.time()
    await run_once(pool, clock, policy_with(receiver.url, dingtalk=[
        {"url": receiver.url + "/robot/send?access_token=abc", "secret": "SECwrong", "at_mobiles": ["13800000000"]}]))
    async with pool.acquire() as conn:
        [row] = await outbox(conn)
        err = await conn.fetchval("SELECT last_error FROM alert_outbox")
    assert row["state"] == "failed" and "310000" in err


async def test_wecom_markdown_and_rate_limit_retry(pool, clock, receiver):
    def check(req):
        body = json.loads(req["body"])
        ok = (set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
              and 0 < len(body["markdown"]["content"].encode()) <= 4096 and "甲烷" in body["markdown"]["content"])
        return 200, (b'{"errcode":0,"errmsg":"ok"}' if ok else b'{"errcode":40008,"errmsg":"invalid message type"}')

    receiver.script.append((200, b'{"errcode":45009,"errmsg":"api freq out of limit"}'))
    receiver.default = (200, check)
    svc = await run_once(pool, clock, policy_with(receiver.url, wecom=[
        {"url": receiver.url + "/cgi-bin/webhook/send?key=k1"}]))
    async with pool.acquire() as conn:
        [row] = await outbox(conn)
        assert row["state"] == "pending" and row["attempts"] == 1  # rate-limited: retried later
        clock.advance(1)  # backoff of the first retry is 0.5–1 s
        await svc.deliver()
        [row] = await outbox(conn)
    assert row["state"] == "delivered" and len(receiver.requests) == 2
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]  # a retry sends what was decided


async def test_wecom_text_with_mentions(pool, clock, receiver):
    await run_once(pool, clock, policy_with(receiver.url, wecom=[
        {"url": receiver.url + "/send?key=k", "msgtype": "text", "mentioned_mobiles": ["13900000000"]}]))
    body = json.loads(receiver.requests[0]["body"])
    assert body["msgtype"] == "text" and body["text"]["mentioned_mobile_list"] == ["13900000000"]
    assert "【橙色预警】" in body["text"]["content"]


class _Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


async def test_email_over_smtp(pool, clock, receiver):
    box = _Mailbox()
    port = free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        await run_once(pool, clock, policy_with(receiver.url, email=[
            {"to": ["duty@example.cn"], "sender": "yujing@example.cn", "smtp": {"host": "127.0.0.1", "port": port}}]))
    finally:
        ctl.stop()
    [env] = box.messages
    assert env.rcpt_tos == ["duty@example.cn"] and env.mail_from == "yujing@example.cn"
    msg = email.message_from_bytes(env.original_content, policy=email.policy.default)
    assert str(msg["Subject"]).startswith("【橙色预警】南昌市 某煤矿")
    assert msg["X-Yujing-Idempotency-Key"].startswith("zone:1:methane#1@1")
    assert msg["Message-ID"].endswith("@yujing>")
    assert "断电值 1.5%VOL" in msg.get_content()


async def test_email_server_down_is_retried(pool, clock, receiver):
    await run_once(pool, clock, policy_with(receiver.url, email=[
        {"to": ["a@b.cn"], "sender": "y@b.cn", "smtp": {"host": "127.0.0.1", "port": free_port()}}]))
    async with pool.acquire() as conn:
        [row] = await outbox(conn)
    assert row["state"] == "pending" and row["attempts"] == 1


def _check_schema(msg: dict) -> None:
    for key in SCHEMA["required"]:
        assert key in msg, key
    props = SCHEMA["properties"]
    for key, spec in props.items():
        if key not in msg:
            continue
        if "enum" in spec:
            assert msg[key] in spec["enum"], (key, msg[key])
        if "const" in spec:
            assert msg[key] == spec["const"]
        types = spec.get("type")
        if types:
            types = types if isinstance(types, list) else [types]
            pytypes = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
                       "null": type(None), "array": list}
            assert any(isinstance(msg[key], pytypes[t]) for t in types), (key, msg[key])


async def test_mqtt_alert_topic(pool, clock, receiver, broker):
    got = []
    ready = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-sub")
    sub.on_connect = lambda c, u, f, rc, p=None: (c.subscribe("yj/v1/+/+/alerts", qos=1), ready.set())
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    sub.username_pw_set(*broker.tools_login)
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-pub")
    pub.username_pw_set(*broker.login("yujing-collector"))  # publishes alerts in yujing's place
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()

    def publish(topic: str, payload: bytes) -> None:
        info = pub.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=5)
        if not info.is_published():
            raise RuntimeError("not acknowledged by the broker")

    try:
        assert ready.wait(5)
        await asyncio.sleep(0.2)
        await run_once(pool, clock, make_policy(receiver.url), mqtt_publish=publish)
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.05)
    finally:
        sub.loop_stop(); pub.loop_stop(); sub.disconnect(); pub.disconnect()
    [(topic, msg)] = got
    assert topic == "yj/v1/E001/G001/alerts"
    _check_schema(msg)
    assert msg["schema"] == "yujing.alert/2" and msg["idempotency_key"] == "zone:1:methane#1@1"
    assert msg["grade"] == "orange" and msg["subject"] == {"kind": "sensor", "id": 1, "code": "CH4-0101"}
