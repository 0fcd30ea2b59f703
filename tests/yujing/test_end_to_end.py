"""From a gateway's MQTT publish to a graded alert: webhook, gateway alerts topic, database."""

from __future__ import annotations

import asyncio
import json
import threading

import paho.mqtt.client as mqtt
import yaml

from domain.codec import encode_batch
from domain.topics import alerts_topic, up_topic
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from tests.alerts.support import Receiver, policy_doc
from tests.support.fleet import now_ms
from tests.support.publisher import Publisher
from tests.support.running import running_service, service_settings
from tests.support.services import tools_login, wait_for

REGISTRY = """
enterprises: [{id: E1, name: 某煤矿, region: "360100", industry: coal_mine}]
zones:       [{id: WF1, enterprise: E1, name: 1301采煤工作面, kind: working_face}]
gateways:    [{id: G1, enterprise: E1, zone: WF1}]
sensors:     [{id: CH4-01, gateway: G1, kind: methane, location: 采煤工作面, location_class: T1}]
"""


def subscribe(port: int, topic: str) -> tuple[mqtt.Client, list[bytes]]:
    got: list[bytes] = []
    ready = threading.Event()
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: got.append(m.payload)
    c.on_subscribe = lambda *a: ready.set()
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, qos=1)
    c.username_pw_set(*tools_login(port))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(10)
    return c, got


async def test_methane_power_cut_reaches_webhook_and_gateway(db_url, db, broker, tmp_path):
    await import_registry(db, parse_registry_file(REGISTRY))
    receiver = Receiver()
    policy = tmp_path / "alerts.yaml"
    policy.write_text(yaml.safe_dump(policy_doc(receiver.url), allow_unicode=True))
    gateway_sub, gateway_got = subscribe(broker.port, alerts_topic("E1", "G1"))
    try:
        async with running_service(service_settings(db_url, broker.url, alerts_config=policy)):
            pub = Publisher(broker.port)
            t = now_ms()
            pub.publish_all([(up_topic("E1", "G1"),
                              encode_batch(t, ["CH4-01"] * 3, [0.3, 0.5, 1.62], None, [t - 2000, t - 1000, t]))])
            await asyncio.to_thread(pub.wait_acked)
            await wait_for(lambda: any("橙色预警" in json.dumps(b, ensure_ascii=False) for b in receiver.json()),
                           15, what="orange alert at the webhook")
            await wait_for(lambda: gateway_got, 10, what="alert on the gateway's alerts topic")
            pub.close()
        alert = await db.fetchrow("SELECT * FROM alerts WHERE rule = 'limit'")
        assert alert["grade"] == 3 and alert["rule"] == "limit" and alert["state"] == "firing"  # 3 = orange
        text = json.dumps(receiver.json(), ensure_ascii=False)
        assert "某煤矿" in text and "甲烷" in text and "1.62" in text
        message = json.loads(gateway_got[0])
        assert message["grade"] == "orange" and message["schema"] == "yujing.alert/2"
        assert await db.fetchval("SELECT count(*) FROM readings") == 3
    finally:
        gateway_sub.loop_stop()
        receiver.close()
