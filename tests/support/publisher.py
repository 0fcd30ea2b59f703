"""A gateway-side publisher for tests: QoS 1, persistent session, paced, every PUBACK awaited."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.services import tools_login


class Publisher:
    def __init__(self, port: int, client_id: str | None = None) -> None:
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(0)  # bounded windows make paho 2.2 quadratic
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 1)
        self.client.username_pw_set(*tools_login(port))  # the test broker's tools login
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self._acked = 0
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        self.published = 0

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self._acked += 1

    def publish_all(self, messages: Iterable[tuple[str, bytes]], rate_msgs_s: float | None = None,
                    stop: threading.Event | None = None) -> None:
        start = time.perf_counter()
        for i, (topic, payload) in enumerate(messages):
            if stop is not None and stop.is_set():
                return
            if rate_msgs_s:
                delay = start + i / rate_msgs_s - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            # While disconnected paho keeps the message and sends it after reconnecting.
            self.client.publish(topic, payload, qos=1)
            self.published += 1

    def wait_acked(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self._acked < self.published:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the broker acknowledged {self._acked} of {self.published} messages in time")
            time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
