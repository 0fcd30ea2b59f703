"""paho-mqtt in its own network thread, bridged into asyncio.

paho-mqtt 2.x is used for its manual acknowledgement: a QoS 1 message is acknowledged to the
broker only when :meth:`MqttBridge.ack` is called, after its readings are committed. The network
thread hands messages to the event loop through one thread-safe wake-up per burst; everything
else stays on the loop.

Memory is bounded by MQTT 5 flow control: the collector announces a Receive Maximum, so the
broker never has more than that many unacknowledged messages out to it; the rest of a backlog
waits in the broker.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from domain.messages import RawMessage
from domain.errors import RetryLater
from yujing.settings import MqttEndpoint

log = logging.getLogger(__name__)


def _now_us() -> int:
    return time.time_ns() // 1000


# Another connection logged in with our client id. Brokers that say so send DISCONNECT 0x8E;
# Mosquitto 2.0.11 closes the old connection silently, so yujing's broker plugin refuses the second
# connection and tells the holder on this topic (deploy/mosquitto/plugin/yujing_auth.c).
SESSION_TAKEN_OVER = 0x8E
SESSION_CONTESTED_TOPIC = "$yujing/session-contested"
TAKEOVER_HOLD_S = 60.0  # not ready for this long after the last takeover or attempt


class MqttBridge:
    """One persistent MQTT session, subscribed at QoS 1, with acknowledgement after commit."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        client_id: str,
        subscriptions: Sequence[str],
        *,
        session_expiry_s: int,
        receive_maximum: int,
        keepalive_s: int = 30,
        tls_ca: str | None = None,
        clock_us: Callable[[], int] = _now_us,
    ) -> None:
        self._endpoint = endpoint
        self._subscriptions = list(subscriptions)
        self._clock_us = clock_us
        self._keepalive_s = keepalive_s
        self._inbox: collections.deque[RawMessage] = collections.deque()
        self._signalled = False
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.connects = 0
        self.last_error: str | None = None
        self._client_id = client_id
        self.takeovers = 0
        self._taken_over_at: float | None = None  # time.monotonic() of the last takeover

        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if endpoint.username is not None:
            client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls:
            context = ssl.create_default_context(cafile=tls_ca)
            client.tls_set_context(context)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        # Our own publishes (alerts to gateways): paho 2.2 rescans its store on every PUBACK when
        # this window is bounded, so it stays open; the alerts outbox bounds what is in flight.
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client
        self._connect_properties = Properties(PacketTypes.CONNECT)
        self._connect_properties.SessionExpiryInterval = session_expiry_s
        self._connect_properties.ReceiveMaximum = receive_maximum

    # --- lifecycle (event-loop side) ---------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself with capped backoff."""
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(
            self._endpoint.host,
            self._endpoint.port,
            keepalive=self._keepalive_s,
            clean_start=False,
            properties=self._connect_properties,
        )
        self._client.loop_start()

    async def wait_subscribed(self, timeout_s: float) -> None:
        ok = await asyncio.to_thread(self._subscribed.wait, timeout_s)
        if not ok:
            raise RetryLater(
                f"MQTT broker {self._endpoint.host}:{self._endpoint.port} did not accept the "
                f"connection and subscriptions within {timeout_s} s ({self.last_error or 'no answer'})"
            )

    def stop(self) -> None:
        """Disconnect cleanly; the persistent session (and what was not acknowledged) stays in the broker."""
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def session_taken_over(self) -> bool:
        """Whether another connection took this session over within the last ``TAKEOVER_HOLD_S``:
        someone else holds the collector's login and client id (a second collector, or a leak)."""
        at = self._taken_over_at
        return at is not None and time.monotonic() - at < TAKEOVER_HOLD_S

    def pending(self) -> int:
        """Messages received and not yet taken by the pipeline."""
        return len(self._inbox)

    async def take(self, max_messages: int, timeout_s: float) -> list[RawMessage]:
        """Up to ``max_messages`` received messages; waits up to ``timeout_s`` for the first one."""
        if not self._inbox:
            try:
                await asyncio.wait_for(self._event.wait(), timeout_s)
            except TimeoutError:
                return []
        # Clear the flag before draining: a message appended after the drain signals again.
        self._signalled = False
        self._event.clear()
        inbox = self._inbox
        n = min(len(inbox), max_messages)
        taken = [inbox.popleft() for _ in range(n)]
        if inbox:  # more than we took: make sure the next take does not wait
            self._event.set()
        return taken

    def ack(self, mids: Iterable[int]) -> int:
        """Acknowledge committed QoS 1 messages. Returns how many acknowledgements were queued.

        An acknowledgement that cannot be sent (connection down) is simply lost: the broker
        redelivers the message, and the write path stores nothing twice.
        """
        sent = 0
        ack = self._client.ack
        for mid in mids:
            if mid and ack(mid, 1) == mqtt.MQTT_ERR_SUCCESS:
                sent += 1
        return sent

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish without waiting (thread-safe in paho); used for alert messages to gateways.

        Raises :class:`RetryLater` when the client cannot take the message now, so the alerts
        outbox retries it (at least once; receivers deduplicate on the idempotency key)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RetryLater(f"MQTT publish to {topic} not accepted: {mqtt.error_string(info.rc)}")

    # --- paho network thread -----------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"connect refused: {reason_code}"
            log.warning("mqtt connect refused", extra={"reason": str(reason_code)})
            return
        self.connects += 1
        self._connected.set()
        # Subscribing again on every connect is harmless with a persistent session and covers a
        # broker that lost its state.
        client.subscribe([(t, mqtt.SubscribeOptions(qos=1)) for t in self._subscriptions])
        log.info(
            "mqtt connected",
            extra={"session_present": bool(flags.session_present), "connects": self.connects},
        )

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            self.last_error = f"subscription refused: {', '.join(failed)}"
            log.error("mqtt subscription refused", extra={"reasons": failed})
            return
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        self.last_error = f"disconnected: {reason_code}"
        if getattr(reason_code, "value", None) == SESSION_TAKEN_OVER:
            self._taken_over("taken over by another connection with this client id", None)
            return
        log.warning("mqtt disconnected", extra={"reason": str(reason_code)})

    def _taken_over(self, what: str, by: bytes | None) -> None:
        self.takeovers += 1
        self._taken_over_at = time.monotonic()
        log.error(f"mqtt session {what}; not ready (another collector with the same client id, or a leaked login?)",
                  extra={"client_id": self._client_id, "takeovers": self.takeovers,
                         "by": by.decode(errors="replace")[:300] if by else None})

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.topic == SESSION_CONTESTED_TOPIC:  # from the broker, to this client only
            self._taken_over("contested: the broker refused a second connection with this client id", message.payload)
            return
        self._inbox.append(
            RawMessage(
                topic=message.topic,
                payload=message.payload,
                mid=message.mid if message.qos else 0,
                received_us=self._clock_us(),
                qos=message.qos,
                retain=message.retain,
            )
        )
        if not self._signalled:
            self._signalled = True
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._event.set)
