"""Publishing emitter events over MQTT with paho-mqtt 2.x clients driven from one thread.

No paho network threads: every client's socket sits in one ``selectors`` selector and the owner
calls :meth:`Publisher.poll` (reads PUBACKs, writes queued packets, keeps alive, reconnects).
That keeps the GIL for the generator and lets one process drive many connections.

Connections: ``connections=None`` gives every gateway its own client, with its Last Will
(``offline``, retained, QoS 1) on ``yj/v1/{e}/{g}/status`` and ``online`` published retained on
connect — a link outage is an unclean close of that socket, so the broker itself publishes the
Will. ``connections=N`` shares N clients among all gateways (load tests with thousands of
gateways); statuses are then published explicitly, as a Will cannot be per gateway.

Backpressure: :attr:`Publisher.pending` counts QoS 1 messages not yet acknowledged; the run loop
stops generating while it is above ``max_pending`` (nothing is dropped; the simulated clock falls
behind, which the run loop reports as lag). Unexpected disconnects reconnect with capped,
jittered exponential backoff; paho re-sends unacknowledged messages after the reconnect.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import selectors
import socket
import time
import uuid
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from domain.codec import encode_status
from domain.errors import RetryLater
from simulators.fleet import Fleet
from simulators.gateway import Event, OutMessage, StatusChange

log = logging.getLogger(__name__)

# paho 2.2 rescans every stored message on each PUBACK when its in-flight window is bounded
# (Client._update_inflight: O(window) per acknowledgement, 80 % of the CPU at 6,000 msg/s with a
# window of 2,000). So paho's window is unbounded (0) and this module bounds in-flight messages
# itself with ``max_pending``, checked before every step of the emitter.
DEFAULT_MAX_INFLIGHT = 0
DEFAULT_MAX_PENDING = 20_000
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 15.0


@dataclasses.dataclass(frozen=True, slots=True)
class PublisherOptions:
    mqtt_url: str = "mqtt://127.0.0.1:1884"
    connections: int | None = None  # None: one client per gateway (with its Last Will)
    qos: int = 1
    max_inflight: int = DEFAULT_MAX_INFLIGHT  # paho's per-client window; 0 = unbounded (see above)
    max_pending: int = DEFAULT_MAX_PENDING  # unacknowledged messages over all clients
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    client_id_prefix: str = ""  # default: "yj-sim-" + a random run id


@dataclasses.dataclass(slots=True)
class PublisherStats:
    published: int = 0  # up messages handed to paho
    acked: int = 0  # PUBACKs received (up and status)
    readings: int = 0  # readings in the published up messages (as the emitter built them)
    payload_bytes: int = 0
    statuses: int = 0
    disconnects: int = 0  # unexpected
    reconnects: int = 0


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"MQTT URL must be mqtt://host:port, got {url!r}")
    return (parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            unquote(parts.username) if parts.username else None, unquote(parts.password) if parts.password else None)


class _Conn:
    __slots__ = ("client", "gateway", "want_up", "connected", "next_retry_s", "backoff_s", "sock", "opened")

    def __init__(self, client: mqtt.Client, gateway: int | None) -> None:
        self.client = client
        self.gateway = gateway  # the gateway whose Will this is (per-gateway mode)
        self.want_up = True  # False while its gateway's link is down on purpose
        self.connected = False
        self.next_retry_s = 0.0
        self.backoff_s = BACKOFF_MIN_S
        self.sock = None
        self.opened = False


class Publisher:
    """Not thread-safe: the thread that calls :meth:`connect` calls every other method too."""

    def __init__(self, fleet: Fleet, options: PublisherOptions, clock=time.monotonic) -> None:
        self.fleet = fleet
        self.options = options
        self.clock = clock
        self.stats = PublisherStats()
        self._host, self._port, self._user, self._password = parse_mqtt_url(options.mqtt_url)
        self._sel = selectors.DefaultSelector()
        self._conns: list[_Conn] = []
        self._gw_conn: list[int] = []
        self._last_misc = 0.0
        prefix = options.client_id_prefix or f"yj-sim-{uuid.uuid4().hex[:6]}"
        if options.connections is None:
            for g, (ei, gw) in enumerate(fleet.gateways):
                cid = f"{prefix}-{fleet.enterprises[ei].id}-{gw.id}"[:128]
                self._conns.append(_Conn(self._client(cid, fleet.status_topics[g]), g))
                self._gw_conn.append(g)
        else:
            n = max(1, min(options.connections, max(1, fleet.n_gateways)))
            self._conns = [_Conn(self._client(f"{prefix}-{k}", None), None) for k in range(n)]
            self._gw_conn = [g % n for g in range(fleet.n_gateways)]
        for conn in self._conns:
            conn.client.user_data_set(conn)

    # ---- lifecycle --------------------------------------------------------------------------------
    def connect(self) -> None:
        """Connect every client and wait for every CONNACK; raises RetryLater if the broker is away."""
        for conn in self._conns:
            self._open(conn)
        deadline = self.clock() + self.options.connect_timeout_s
        while not all(c.connected for c in self._conns):
            if self.clock() > deadline:
                down = sum(not c.connected for c in self._conns)
                raise RetryLater(f"{down} of {len(self._conns)} MQTT connections to {self._host}:{self._port} "
                                 f"got no CONNACK within {self.options.connect_timeout_s} s")
            self.poll(0.05)
        if self.options.connections is not None:
            for g in range(self.fleet.n_gateways):
                self._status(g, True)

    def close(self, timeout_s: float = 10.0) -> bool:
        """Drain, announce ``offline`` (clean shutdown) and disconnect. True if everything was acked."""
        for g in range(self.fleet.n_gateways):
            if self._conns[self._gw_conn[g]].want_up:
                self._status(g, False)
        drained = self.drain(timeout_s)
        for conn in self._conns:
            conn.want_up = False
            if conn.connected:
                conn.client.disconnect()
        end = self.clock() + 2.0
        while any(c.sock is not None for c in self._conns) and self.clock() < end:
            self.poll(0.02)
        self._sel.close()
        return drained

    @property
    def pending(self) -> int:
        return self.stats.published + self.stats.statuses - self.stats.acked

    def drain(self, timeout_s: float) -> bool:
        end = self.clock() + timeout_s
        while self.pending > 0 and self.clock() < end:
            self.poll(0.02)
        return self.pending <= 0

    # ---- publishing -----------------------------------------------------------------------------
    def handle(self, events: list[Event]) -> None:
        qos = self.options.qos
        for ev in events:
            if isinstance(ev, OutMessage):
                self._conns[self._gw_conn[ev.gateway]].client.publish(ev.topic, ev.payload, qos)
                self.stats.published += 1
                self.stats.readings += ev.sensor.shape[0]
                self.stats.payload_bytes += len(ev.payload)
            elif isinstance(ev, StatusChange):
                self._status_change(ev)

    def _status_change(self, ev: StatusChange) -> None:
        if self.options.connections is not None:
            self._status(ev.gateway, ev.online)
            return
        conn = self._conns[self._gw_conn[ev.gateway]]
        if ev.online:
            conn.want_up = True
            if not conn.connected and conn.sock is None:
                self._open(conn)
        else:
            conn.want_up = False
            if conn.sock is not None:
                if ev.clean:
                    conn.client.disconnect()
                else:  # the link dies: no DISCONNECT, the broker publishes the Will
                    try:
                        conn.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    conn.client.loop_read()

    def _status(self, g: int, online: bool) -> None:
        conn = self._conns[self._gw_conn[g]]
        conn.client.publish(self.fleet.status_topics[g], encode_status(online), 1, retain=True)
        self.stats.statuses += 1

    # ---- the network loop -------------------------------------------------------------------------
    def poll(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for socket events and handle them; keepalive and reconnects."""
        if self._sel.get_map():
            for key, mask in self._sel.select(timeout_s):
                client = key.data.client
                if mask & selectors.EVENT_READ:
                    client.loop_read()
                if mask & selectors.EVENT_WRITE:
                    client.loop_write()
        elif timeout_s > 0:
            time.sleep(timeout_s)
        now = self.clock()
        if now - self._last_misc >= 1.0:
            self._last_misc = now
            for conn in self._conns:
                if conn.sock is not None:
                    conn.client.loop_misc()
                elif conn.want_up and now >= conn.next_retry_s:
                    self.stats.reconnects += 1
                    self._open(conn)

    def _open(self, conn: _Conn) -> None:
        try:
            if conn.opened:
                conn.client.reconnect()
            else:
                conn.client.connect(self._host, self._port, self.options.keepalive_s)
                conn.opened = True
        except OSError as exc:
            conn.next_retry_s = self.clock() + conn.backoff_s * random.uniform(0.5, 1.0)
            conn.backoff_s = min(conn.backoff_s * 2.0, BACKOFF_MAX_S)
            log.warning("MQTT connect to %s:%s failed (%s); retrying", self._host, self._port, exc)

    def _client(self, client_id: str, will_topic: str | None) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                        clean_session=True)
        if self._user:
            c.username_pw_set(self._user, self._password)
        if will_topic:
            c.will_set(will_topic, encode_status(False), qos=1, retain=True)
        c.max_inflight_messages_set(self.options.max_inflight)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(BACKOFF_MIN_S, BACKOFF_MAX_S)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        return c

    # ---- paho callbacks (all on this thread; userdata is the _Conn) --------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        conn: _Conn = userdata
        if reason_code.is_failure:
            log.warning("MQTT connection refused: %s", reason_code)
            return
        conn.connected = True
        conn.backoff_s = BACKOFF_MIN_S
        if conn.gateway is not None:
            self._status(conn.gateway, True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        conn: _Conn = userdata
        conn.connected = False
        if conn.want_up:  # not on purpose: the broker went away
            self.stats.disconnects += 1
            conn.next_retry_s = self.clock() + conn.backoff_s * random.uniform(0.5, 1.0)
            conn.backoff_s = min(conn.backoff_s * 2.0, BACKOFF_MAX_S)
            log.warning("MQTT client %s lost its connection (%s); reconnecting", client._client_id.decode(), reason_code)  # noqa: SLF001

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.stats.acked += 1

    def _on_socket_open(self, client, userdata, sock) -> None:
        userdata.sock = sock
        self._sel.register(sock, selectors.EVENT_READ, userdata)

    def _on_socket_close(self, client, userdata, sock) -> None:
        userdata.sock = None
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _on_register_write(self, client, userdata, sock) -> None:
        try:
            self._sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, userdata)
        except (KeyError, ValueError):
            pass

    def _on_unregister_write(self, client, userdata, sock) -> None:
        try:
            self._sel.modify(sock, selectors.EVENT_READ, userdata)
        except (KeyError, ValueError):
            pass
