"""A read-ahead buffer under paho-mqtt's socket, with a fast path for PUBLISH packets."""

from __future__ import annotations

import ssl

READ_AHEAD_BYTES = 65_536  # socket read size: the most read beyond the inbox's credit


class ReadAhead:
    """The connection's socket as paho sees it, with reads served from one read-ahead buffer.

    paho reads a packet in three or four ``recv`` calls (type byte, length bytes, body); this turns
    them into one system call per 64 KB. At most ``READ_AHEAD_BYTES`` (or one packet) are taken
    from the kernel beyond what the inbox has room for, so TCP still pushes back. ``pending()``
    reports buffered bytes (as an SSL socket does), so the network thread does not wait in select
    on them.

    ``take_publish`` is the fast path for the one packet that comes by the thousand: a complete
    QoS 0/1 PUBLISH at the head of the buffer is parsed here (its MQTT 5 properties skipped, as
    the collector uses none) instead of by paho, whose per-packet handling (properties objects,
    message objects, topic matching, two locks) was half of the collector's CPU with
    single-reading messages. Everything else (CONNACK, SUBACK, PUBACK, PINGRESP, QoS 2) is left
    to paho, which is only asked to read at a packet boundary."""

    __slots__ = ("_sock", "_buf", "_pos")

    def __init__(self, sock) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        pos, buf = self._pos, self._buf
        if pos >= len(buf):
            if n >= READ_AHEAD_BYTES:
                return self._sock.recv(n)
            buf = self._buf = self._sock.recv(READ_AHEAD_BYTES)  # raises BlockingIOError when empty
            pos = 0
        end = pos + n
        self._pos = min(end, len(buf))
        return buf[pos:end]

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buf) - self._pos + inner

    def _fill(self, need: int) -> bool:
        """Make ``need`` bytes available from the head; False if the socket has no more now."""
        have = len(self._buf) - self._pos
        if have >= need:
            return True
        try:
            more = self._sock.recv(max(READ_AHEAD_BYTES, need - have))
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        if not more:  # closed: paho's next read finds out and reports it
            return False
        self._buf = self._buf[self._pos:] + more
        self._pos = 0
        return len(self._buf) >= need

    def take_publish(self) -> tuple[str, bytes, int, int, bool] | None:
        """``(topic, payload, packet id, qos, retain)`` of a complete MQTT 5 QoS 0/1 PUBLISH at the
        head of the stream, consumed; None (nothing consumed) for anything else or a partial packet."""
        if not self._fill(5):  # the smallest PUBLISH has 5 bytes; a length field has at most 4
            return None
        buf, pos = self._buf, self._pos
        head = buf[pos]
        qos = (head >> 1) & 3
        if head >> 4 != 3 or qos == 2:
            return None
        length, mult, i = 0, 1, pos + 1
        while True:  # remaining length: 1-4 bytes, all within the 5 made available
            byte = buf[i]
            length += (byte & 127) * mult
            mult *= 128
            i += 1
            if not byte & 128:
                break
            if i - pos > 4:
                return None  # malformed: paho reports it
        start = i - pos
        if not self._fill(start + length):
            return None
        buf, pos = self._buf, self._pos
        body = pos + start
        end = body + length
        tlen = int.from_bytes(buf[body:body + 2], "big")
        k = body + 2 + tlen
        topic = buf[body + 2:k]
        mid = 0
        if qos:
            mid = int.from_bytes(buf[k:k + 2], "big")
            k += 2
        plen, mult = 0, 1
        while True:  # properties length, then the properties, skipped
            byte = buf[k]
            k += 1
            plen += (byte & 127) * mult
            mult *= 128
            if not byte & 128:
                break
        k += plen
        if k > end:
            return None  # malformed: paho reports it
        self._pos = end
        return topic.decode("utf-8", "replace"), buf[k:end], mid, qos, bool(head & 1)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)
