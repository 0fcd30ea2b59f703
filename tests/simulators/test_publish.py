"""Publishing to a real Mosquitto (project configuration, private port): messages arrive and
decode, statuses are retained, and a dead gateway's Last Will reaches subscribers."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from domain.codec import parse_batch
from simulators import FleetConfig, PublisherOptions, RunOptions, ScenarioSpec, build_fleet, run_simulation
from tests.support.services import tools_login

TIMEOUT_S = 20.0


def _fleet(enterprise: str):
    doc = {"name": "pub", "seed": 5, "gateway": {"jitter_share": 0.02},
           "enterprises": [{"id": enterprise, "name": "m", "region": "360302", "industry": "coal_mine",
                            "site": {"faces": 1, "headings": 1}}]}
    return build_fleet(FleetConfig.from_config(doc))


class _Sink:
    def __init__(self, url_port: int, topic: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sink-{time.monotonic_ns()}")
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_message = self._on_message
        self.c.username_pw_set(*tools_login(url_port))
        self.c.connect("127.0.0.1", url_port)
        self.c.loop_start()
        assert self.ready.wait(TIMEOUT_S), "subscription not acknowledged"

    def _on_message(self, c, u, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_published_batches_arrive_and_decode(broker, topic_prefix):
    fleet = _fleet(topic_prefix)
    sink = _Sink(broker.port, f"yj/v1/{topic_prefix}/#")
    try:
        rep = run_simulation(fleet, PublisherOptions(broker.tools_url), options=RunOptions(duration_s=2.0, speed=150.0))
        assert rep.drained
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            with sink.lock:
                ups = [m for m in sink.messages if m[0].endswith("/up")]
            if len(ups) >= rep.publisher.published:
                break
            time.sleep(0.05)
    finally:
        sink.close()
    assert rep.publisher.published > 20 and len(ups) == rep.publisher.published
    readings = sum(len(parse_batch(p)) for _, p, _ in ups)
    assert readings == rep.publisher.readings
    statuses = [(t, p) for t, p, _ in sink.messages if t.endswith("/status")]
    gws = {t.split("/")[3] for t, _ in statuses}
    assert gws == {g.id for _, g in fleet.gateways}
    assert all(p == b"offline" for t, p in statuses[-len(gws):])  # clean shutdown announces offline


def test_dead_gateway_last_will_is_published_by_the_broker(broker, topic_prefix):
    fleet = _fleet(topic_prefix)
    spec = ScenarioSpec.from_config({"name": "dead", "type": "dead_gateway", "industry": "coal_mine",
                                     "target": {"zone_kind": "working_face"}, "params": {"onset_s": 1.0},
                                     "expected_grade": "blue"}, "dead")
    sink = _Sink(broker.port, f"yj/v1/{topic_prefix}/+/status")
    try:
        rep = run_simulation(fleet, PublisherOptions(broker.tools_url), scenarios=[spec],
                             options=RunOptions(duration_s=1.5, speed=2.0))
        dead_gw = rep.truths[0].gateway
        got = []
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and b"offline" not in got:
            with sink.lock:
                got = [p for t, p, _ in sink.messages if t.split("/")[3] == dead_gw]
            time.sleep(0.05)
    finally:
        sink.close()
    assert got[:2] == [b"online", b"offline"]
    # the Will was retained: a late subscriber still sees the gateway offline
    late = _Sink(broker.port, f"yj/v1/{topic_prefix}/{dead_gw}/status")
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and not late.messages:
            time.sleep(0.05)
    finally:
        late.close()
    assert late.messages and late.messages[0][1] == b"offline" and late.messages[0][2]
