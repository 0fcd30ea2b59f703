"""paho-mqtt driven by a network thread of our own, bridged into asyncio, with credit-based reading.

paho-mqtt 2.x is used for its manual acknowledgement: a QoS 1 message is acknowledged to the
broker only when :meth:`MqttBridge.ack` is called, after its readings are committed. The network
thread hands messages to the event loop through one thread-safe wake-up per burst; everything
else stays on the loop.

Memory is bounded here, not by the broker. MQTT 5's Receive Maximum would let the broker bound
what it sends, but Mosquitto 2.0.11 stops honouring it once the client acknowledges (README,
Backpressure), so the bridge holds its own credit: the network thread reads from the socket only
while the inbox holds fewer than ``inbox_max_messages``. When the pipeline falls behind, reads
stop, the kernel buffers fill, TCP pushes back and the backlog waits in the broker.

A reader that does not read also does not see PINGRESP, and paho closes a connection whose
PINGRESP is late while no bytes arrive. So keepalive and credit are handled together: while
reads are held the thread runs none of paho's keepalive logic and keeps the broker's side alive
itself with a PINGREQ every half keepalive (the broker drops a client it has not heard from for
1.5 keepalives); the PINGRESP arrives, harmlessly, after the backlog. paho's check runs only in a
round that had reads on, so it always sees the bytes a resumed read brought; it tolerates a late
PINGRESP while bytes keep arriving. A hold lasts as long as the pipeline takes to free credit
(10,000 50-reading messages were 3-25 s of work on a heavily loaded 2-core box), whatever the
keepalive.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from domain.messages import RawMessage
from ingest.read_ahead import ReadAhead
from domain.errors import RetryLater
from ingest.settings import MqttEndpoint

log = logging.getLogger(__name__)

READ_BURST = 256  # packets read per readiness check while credit lasts
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
HELD_WAIT_S = 0.05  # select timeout while reads are held (a take wakes the thread sooner)


# paho internals the bridge relies on (paho-mqtt 2.1 and 2.2; pyproject pins < 3), checked at start.
_PAHO_PRIVATE = ("_send_simple_command", "_in_packet", "_msgtime_mutex", "_last_bytes_received", "_sock")


def _now_us() -> int:
    return time.time_ns() // 1000


# Another connection logged in with our client id. Brokers that say so send DISCONNECT 0x8E;
# Mosquitto 2.0.11 closes the old connection silently, so yujing's broker plugin refuses the second
# connection and tells the holder on this topic (deploy/mosquitto/plugin/yujing_auth.c).
SESSION_TAKEN_OVER = 0x8E
SESSION_CONTESTED_TOPIC = "$yujing/session-contested"
TAKEOVER_HOLD_S = 60.0  # not ready for this long after the last takeover or attempt


def _ping_without_waiting(client: mqtt.Client) -> None:
    """Queue a PINGREQ without paho waiting for its PINGRESP (which sits behind the backlog).

    paho has no public call for this (``_PAHO_PRIVATE``)."""
    client._send_simple_command(mqtt.PINGREQ)  # noqa: SLF001


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
        inbox_max_messages: int | None = None,
        tls_ca: str | None = None,
        clock_us: Callable[[], int] = _now_us,
    ) -> None:
        self._endpoint = endpoint
        self._subscriptions = list(subscriptions)
        self._clock_us = clock_us
        self._keepalive_s = keepalive_s
        self.inbox_max = inbox_max_messages or receive_maximum
        self._inbox: collections.deque[RawMessage] = collections.deque()
        self._signalled = False
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._reconnect_attempt = 0
        self.connects = 0
        # The connection a message came on is part of its mid (``_connection_mid``); ``ack`` holds
        # this lock so that no acknowledgement of the previous connection is queued after paho's
        # reconnect() has emptied its outgoing queue.
        self._connection = 0
        self._ack_lock = threading.Lock()
        self.stale_acks = 0  # acknowledgements not sent: the message came on an earlier connection
        self.received = 0  # messages taken from the socket (network thread)
        self.inbox_peak = 0  # the most messages the inbox held at once
        self.held_pings = 0  # PINGREQs sent while reads were held
        self.fast_messages = 0  # messages parsed by the read-ahead's fast path, not by paho
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
        # Our own publishes (alerts to gateways): paho 2.2 rescans its store on every PUBACK when
        # this window is bounded, so it stays open; the alerts outbox bounds what is in flight.
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        # paho queues packets from any thread; it tells us so that the network thread writes them.
        client.on_socket_register_write = lambda c, u, sock: self._wake()
        missing = [a for a in _PAHO_PRIVATE if not hasattr(client, a)]
        if missing:
            raise RuntimeError(f"paho-mqtt {mqtt.__version__} lacks {missing}, which the bridge's fast path uses")
        self._client = client
        self._connect_properties = Properties(PacketTypes.CONNECT)
        self._connect_properties.SessionExpiryInterval = session_expiry_s
        self._connect_properties.ReceiveMaximum = receive_maximum

    # --- lifecycle (event-loop side) ---------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; the network thread reconnects with capped, jittered backoff."""
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(
            self._endpoint.host,
            self._endpoint.port,
            keepalive=self._keepalive_s,
            clean_start=False,
            properties=self._connect_properties,
        )
        self._thread = threading.Thread(target=self._run_network, name="mqtt-network", daemon=True)
        self._thread.start()

    async def wait_subscribed(self, timeout_s: float) -> None:
        ok = await asyncio.to_thread(self._subscribed.wait, timeout_s)
        if not ok:
            raise RetryLater(
                f"MQTT broker {self._endpoint.host}:{self._endpoint.port} did not accept the "
                f"connection and subscriptions within {timeout_s} s ({self.last_error or 'no answer'})"
            )

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect cleanly; the persistent session (and what was not acknowledged) stays in the broker."""
        self._stopping.set()
        self._client.disconnect()  # queued; the network thread writes it and paho closes the socket
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():  # the DISCONNECT could not be written: drop the socket
                sock = self._client.socket()
                if sock is not None:
                    sock.close()
                self._thread.join(timeout_s)
        self._wake_r.close()
        self._wake_w.close()

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
        held = len(inbox) >= self.inbox_max  # the network thread may be waiting for this credit
        n = min(len(inbox), max_messages)
        taken = [inbox.popleft() for _ in range(n)]
        if held:
            self._wake()
        if inbox:  # more than we took: make sure the next take does not wait
            self._event.set()
        return taken

    def ack(self, mids: Iterable[int]) -> int:
        """Acknowledge committed QoS 1 messages, in the order given. Returns how many
        acknowledgements were queued.

        An acknowledgement that cannot be sent (connection down) is simply lost: the broker
        redelivers the message, and the write path stores nothing twice. A message taken on an
        earlier connection is not acknowledged at all (``_connection_mid``).
        """
        sent = 0
        ack = self._client.ack
        with self._ack_lock:
            connection = self._connection
            for mid in mids:
                if mid >> 16 != connection:
                    self.stale_acks += mid > 0
                elif ack(mid & 0xFFFF, 1) == mqtt.MQTT_ERR_SUCCESS:
                    sent += 1
        if sent:
            self._wake()
        return sent

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish without waiting (thread-safe in paho); used for alert messages to gateways.

        Raises :class:`RetryLater` when the client cannot take the message now, so the alerts
        outbox retries it (at least once; receivers deduplicate on the idempotency key)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RetryLater(f"MQTT publish to {topic} not accepted: {mqtt.error_string(info.rc)}")
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):  # full: the thread is being woken anyway; closed: stopping
            pass

    # --- network thread ----------------------------------------------------------------------

    def _run_network(self) -> None:
        client = self._client
        while not self._stopping.is_set():
            with self._ack_lock:
                self._connection += 1
            try:
                client.reconnect()
                client._sock = ReadAhead(client.socket())  # noqa: SLF001 (paho has no hook to wrap it)
            except OSError as exc:
                self.last_error = f"connect failed: {exc}"
                self._backoff()
                continue
            try:
                self._serve(client)
            except Exception:  # one connection: a fault in it must not end the thread that reconnects
                log.exception("mqtt network thread error; reconnecting")
                sock = client.socket()
                if sock is not None:
                    sock.close()
                self._connected.clear()
            if not self._stopping.is_set():
                self._backoff()

    def _backoff(self) -> None:
        """Capped, jittered exponential wait before the next connection attempt."""
        self._reconnect_attempt += 1
        cap = min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2 ** min(self._reconnect_attempt, 8))
        self._stopping.wait(random.uniform(RECONNECT_MIN_S, cap))

    def _serve(self, client: mqtt.Client) -> None:
        """Read, write and keep alive one connection until it closes."""
        sock = client.socket()
        held_since = 0.0
        last_held_ping = 0.0
        while sock is not None and client.socket() is sock:
            room = len(self._inbox) < self.inbox_max
            buffered = room and sock.pending() > 0
            rlist = [self._wake_r, sock] if room else [self._wake_r]
            wlist = [sock] if client.want_write() else []
            try:
                readable, writable, _ = select.select(rlist, wlist, [], 0 if buffered else (1.0 if room else HELD_WAIT_S))
            except (OSError, ValueError):  # the socket was closed under us (stop)
                return
            if self._wake_r in readable:
                self._drain_wake()
            rc = client.loop_write() if client.want_write() else mqtt.MQTT_ERR_SUCCESS
            if rc == mqtt.MQTT_ERR_SUCCESS and room and (buffered or sock in readable):
                rc = self._read_burst(client)
            if rc != mqtt.MQTT_ERR_SUCCESS or client.socket() is not sock:
                return
            now = time.monotonic()
            if room and len(self._inbox) < self.inbox_max:
                # Reads were on in this round, so paho's keepalive sees the bytes that arrived. In
                # the round where credit has just come back it would not: it would find no bytes
                # for the whole hold and a PINGRESP still behind the backlog, and close.
                held_since = 0.0
                if client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                    return
            else:
                held_since = held_since or now
                if now - max(held_since, last_held_ping) >= self._keepalive_s / 2:
                    _ping_without_waiting(client)
                    last_held_ping = now
                    self.held_pings += 1

    def _read_burst(self, client: mqtt.Client) -> mqtt.MQTTErrorCode:
        """Read packets while they come and credit lasts: PUBLISHes on the fast path, the rest
        (and anything the fast path declines) one packet per paho read."""
        sock = client.socket()
        inbox = self._inbox
        fast = isinstance(sock, ReadAhead)
        for _ in range(READ_BURST):
            if fast and client._in_packet["command"] == 0:  # noqa: SLF001 (paho is between packets)
                got = sock.take_publish()
                if got is not None:
                    self.fast_messages += 1
                    topic, payload, mid, qos, retain = got
                    mid = self._connection_mid(mid, qos)
                    self._deliver(RawMessage(topic, payload, mid, self._clock_us(), qos, retain))
                    with client._msgtime_mutex:  # noqa: SLF001 (paho's keepalive counts bytes it read)
                        client._last_bytes_received = mqtt.time_func()  # noqa: SLF001
                    if len(inbox) >= self.inbox_max:
                        return mqtt.MQTT_ERR_SUCCESS
                    continue
            before = self.received
            rc = client.loop_read()
            if rc != mqtt.MQTT_ERR_SUCCESS or self.received == before or len(inbox) >= self.inbox_max:
                if rc == mqtt.MQTT_ERR_SUCCESS and self.received == before and fast and sock.pending():
                    continue  # paho took a packet that was not a message; more are buffered
                return rc
        return mqtt.MQTT_ERR_SUCCESS

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    # --- paho callbacks (network thread) -------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"connect refused: {reason_code}"
            log.warning("mqtt connect refused", extra={"reason": str(reason_code)})
            return
        self.connects += 1
        self._reconnect_attempt = 0
        self._connected.set()
        if flags.session_present:
            # The session keeps its subscriptions; the broker may now send its queue before the
            # SUBACK, which then waits behind it while reads are held.
            self._subscribed.set()
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
        if not self._stopping.is_set():
            log.warning("mqtt disconnected", extra={"reason": str(reason_code)})

    def _taken_over(self, what: str, by: bytes | None) -> None:
        self.takeovers += 1
        self._taken_over_at = time.monotonic()
        log.error(f"mqtt session {what}; not ready (another collector with the same client id, or a leaked login?)",
                  extra={"client_id": self._client_id, "takeovers": self.takeovers,
                         "by": by.decode(errors="replace")[:300] if by else None})

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        """A message paho parsed (QoS 2, or one the fast path declined)."""
        self._deliver(
            RawMessage(
                topic=message.topic,
                payload=message.payload,
                mid=self._connection_mid(message.mid, message.qos),
                received_us=self._clock_us(),
                qos=message.qos,
                retain=message.retain,
            )
        )

    def _connection_mid(self, packet_id: int, qos: int) -> int:
        """The mid handed to the pipeline: the packet id, with the connection's number above it.

        After a reconnect the broker resends every unacknowledged message with its original packet
        id, so a message taken on the old connection and committed later is acknowledged as that
        resend (the write path finds it stored), never twice: Mosquitto 2.0.11 can hold more than
        65,535 messages in flight (it ignores Receive Maximum once acknowledged), their packet ids
        repeat, and it takes a second PUBACK for the next message with that id."""
        return (self._connection << 16 | packet_id) if qos else 0

    def _deliver(self, message: RawMessage) -> None:
        if message.topic == SESSION_CONTESTED_TOPIC:  # from the broker's plugin, to this client only (QoS 0)
            self._taken_over("contested: the broker refused a second connection with this client id", message.payload)
            return
        inbox = self._inbox
        inbox.append(message)
        self.received += 1
        if len(inbox) > self.inbox_peak:
            self.inbox_peak = len(inbox)
        if not self._signalled:
            self._signalled = True
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._event.set)
