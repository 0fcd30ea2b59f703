"""Load for the ingest benchmark: the bench fleet, a raw-socket QoS 1 publisher and the rows it sends.

``planned_rows`` yields exactly the rows the publisher's messages carry (same sensors, same
timestamp rule, same gateway order), so a baseline can write what the service receives.
"""

from __future__ import annotations

import multiprocessing as mp
import socket
import threading
import time
import uuid

import numpy as np

from domain.codec import encode_batch
from domain.topics import up_topic
from tests.support.services import tools_login
from tests.support.mqtt_packets import remaining_length

GATEWAYS = 1000
SENSORS_PER_GATEWAY = 50
ENTERPRISES = 20
MAX_PENDING = 20_000  # unacknowledged messages per publisher process (< 65,535 packet ids)


def gateway_ids() -> list[tuple[str, str]]:
    return [(f"B{g % ENTERPRISES:02d}", f"G{g:04d}") for g in range(GATEWAYS)]


def sensor_codes(gateway: str) -> list[str]:
    return [f"{gateway}-T{s:02d}" for s in range(SENSORS_PER_GATEWAY)]


def registry_yaml() -> str:
    lines = ["enterprises:"]
    lines += [f'  - {{id: B{e:02d}, name: 基准企业{e}, region: "360100", industry: hazardous_chemicals}}' for e in range(ENTERPRISES)]
    lines.append("gateways:")
    lines += [f"  - {{id: {g}, enterprise: {e}, expected_interval_s: 10}}" for e, g in gateway_ids()]
    lines.append("sensors:")
    for e, g in gateway_ids():
        lines += [f"  - {{id: {c}, gateway: {g}, enterprise: {e}, kind: temperature}}" for c in sensor_codes(g)]
    return "\n".join(lines) + "\n"


class RawPublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher for load generation: pre-built PUBLISH packets written
    straight to the socket, PUBACKs counted by a reader thread. paho-mqtt costs ~50 µs of CPU per
    publish, which on a 2-core machine would take the CPU the system under test needs; this costs
    a few µs. (``mosquitto_pub`` cannot drive the broker either: MEASUREMENTS.md.)"""

    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Clean session, with the test broker's tools login (username and password flags).
        fields = [client_id.encode(), *(x.encode() for x in tools_login(port))]
        body = b"\x00\x04MQTT\x04\xc2\x00\x3c" + b"".join(len(f).to_bytes(2, "big") + f for f in fields)
        self.sock.sendall(b"\x10" + remaining_length(len(body)) + body)
        if self._recv_exact(4)[:1] != b"\x20":
            raise RuntimeError("broker refused the connection")
        self.acked = 0
        self.sent = 0
        self._mid = 0
        self._out: list[bytes] = []
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def _read_acks(self) -> None:
        pending = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                pending += data
                # PUBACK is 4 bytes (0x40 0x02 id id); PINGRESP 2 bytes (0xd0 0x00)
                i = 0
                while len(pending) - i >= 2:
                    size = 2 + pending[i + 1]
                    if len(pending) - i < size:
                        break
                    if pending[i] == 0x40:
                        self.acked += 1
                    i += size
                pending = pending[i:]
        except OSError:
            return

    def publish(self, topic: bytes, payload: bytes) -> None:
        self._mid = self._mid % 65535 + 1
        head = len(topic).to_bytes(2, "big") + topic + self._mid.to_bytes(2, "big")
        self._out.append(b"\x32" + remaining_length(len(head) + len(payload)) + head + payload)
        self.sent += 1
        if len(self._out) >= 32:
            self.flush()

    def flush(self) -> None:
        if self._out:
            self.sock.sendall(b"".join(self._out))
            self._out.clear()

    def close(self) -> None:
        self.flush()
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


class Ledger:
    """What the publishers sent, per gateway (index in ``gateway_ids()``): messages and the sum of
    their batch ``ts`` in ms. Every message carries all of its gateway's sensors (50-reading
    messages), so each sensor must end up with exactly that many rows and that sum of times."""

    def __init__(self) -> None:
        self.messages = mp.Array("q", GATEWAYS, lock=False)
        self.ts_ms_sum = mp.Array("q", GATEWAYS, lock=False)
        self.unacked = mp.Value("q", 0)  # messages sent and never acknowledged by the broker (must be 0)

    def add(self, indices: list[int], messages: list[int], ts_ms_sum: list[int], unacked: int) -> None:
        for i, n, t in zip(indices, messages, ts_ms_sum):
            self.messages[i] += n
            self.ts_ms_sum[i] += t
        with self.unacked.get_lock():
            self.unacked.value += unacked


def publish_process(port: int, gateways: list[tuple[str, str]], per_message: int, rate_msgs_s: float,
                    duration_s: float, published: mp.Value, acked: mp.Value, seed: int, max_messages: int = 0,
                    ledger: Ledger | None = None, indices: list[int] | None = None) -> None:
    """Publish for ``duration_s`` at ``rate_msgs_s`` (0: as fast as it goes), or ``max_messages``.

    Payloads are the codec's own bytes (``encode_batch``), prepared per gateway in a few value
    variants; only the batch ``ts`` is spliced in per message, strictly increasing per gateway so
    that every reading has its own (sensor, ts). ``ledger`` (with the gateways' ``indices``) gets
    what was sent per gateway once every message is acknowledged (or the wait gave up)."""
    pub = RawPublisher(port, f"bench-pub-{uuid.uuid4().hex[:8]}")
    rng = np.random.default_rng(seed)
    topics, templates = [], []
    marker = 1_111_111_111_111
    for e, g in gateways:
        codes = sensor_codes(g)
        variants = []
        for c in range(0, SENSORS_PER_GATEWAY, per_message):
            ids = codes[c:c + per_message]
            for _ in range(4):
                values = (25.0 + rng.normal(0, 0.5, len(ids))).round(2)
                head, tail = encode_batch(marker, ids, values).split(str(marker).encode())
                variants.append((head, tail))
        topics.append(up_topic(e, g).encode())
        templates.append(variants)
    last_ts = [0] * len(gateways)
    turn = [0] * len(gateways)
    ts_sum = [0] * len(gateways)
    start = time.perf_counter()
    n = 0
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= duration_s or (max_messages and n >= max_messages):
            break
        if rate_msgs_s and n >= int(elapsed * rate_msgs_s) + 1:
            pub.flush()
            time.sleep(0.002)
            continue
        if n - pub.acked > MAX_PENDING:
            pub.flush()
            time.sleep(0.001)
            continue
        g = n % len(gateways)
        ts = max(int(time.time() * 1000), last_ts[g] + 1)
        last_ts[g] = ts
        variants = templates[g]
        head, tail = variants[turn[g] % len(variants)]
        turn[g] += 1
        ts_sum[g] += ts
        pub.publish(topics[g], head + str(ts).encode() + tail)
        n += 1
        if n % 512 == 0:
            published.value = n * per_message
    pub.flush()
    published.value = n * per_message
    deadline = time.monotonic() + 600
    while pub.acked < n and time.monotonic() < deadline:
        time.sleep(0.05)
    acked.value = pub.acked * per_message
    pub.close()
    if ledger is not None:
        ledger.add(indices, turn, ts_sum, n - pub.acked)


class Offer:
    """Publisher processes splitting the gateways between them."""

    def __init__(self, port: int, per_message: int, rate_readings_s: float, duration_s: float, processes: int = 1,
                 max_messages: int = 0, ledger: Ledger | None = None):
        gws = gateway_ids()
        self.published = [mp.Value("q", 0) for _ in range(processes)]
        self.acked = [mp.Value("q", 0) for _ in range(processes)]
        rate_msgs = rate_readings_s / per_message / processes if rate_readings_s else 0
        self.procs = [
            mp.Process(target=publish_process, args=(port, gws[i::processes], per_message, rate_msgs, duration_s,
                                                     self.published[i], self.acked[i], i,
                                                     max_messages // processes, ledger,
                                                     list(range(i, len(gws), processes))), daemon=True)
            for i in range(processes)
        ]

    def start(self) -> Offer:
        for p in self.procs:
            p.start()
        return self

    def join(self) -> int:
        for p in self.procs:
            p.join()
        return sum(v.value for v in self.acked)

    @property
    def readings(self) -> int:
        return sum(v.value for v in self.published)


class RowPlan:
    """The rows the publisher's 50-reading messages carry, in its order: message k goes to gateway
    k mod 1,000 and carries its 50 sensors at ``max(now, previous ts of the gateway + 1 ms)``.
    ``sensor_ids`` maps the bench's sensor codes to the database's ids."""

    def __init__(self, sensor_ids: dict[str, int]) -> None:
        gws = gateway_ids()
        self._sensors = np.array([[sensor_ids[c] for c in sensor_codes(g)] for _, g in gws], dtype=np.int32)
        self._last_ms = np.zeros(len(gws), dtype=np.int64)
        self._next = 0

    def take(self, messages: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ts_us int64, sensor int32)`` of the next ``messages`` messages, one row per reading."""
        n_gw = len(self._last_ms)
        k = self._next + np.arange(messages, dtype=np.int64)
        self._next += messages
        g = k % n_gw
        rank = (k - k[0]) // n_gw  # how many earlier messages of this gateway in this call
        now_ms = int(time.time() * 1000)
        ts_ms = np.maximum(now_ms, self._last_ms[g] + 1) + rank
        np.maximum.at(self._last_ms, g, ts_ms)
        per = self._sensors.shape[1]
        return np.repeat(ts_ms * 1000, per), self._sensors[g].reshape(-1)
