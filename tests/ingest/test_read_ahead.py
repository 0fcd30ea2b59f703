"""The read-ahead's PUBLISH fast path against paho-mqtt's own decoder (the slow, trusted reference).

Streams of MQTT 5 packets (PUBLISH at QoS 0/1/2 with and without properties, PUBACK, PINGRESP)
go through a real socket pair in random slices; every packet must come out whole, either from
the fast path (QoS 0/1 PUBLISH) or, byte for byte, from the plain reads paho makes.
"""

from __future__ import annotations

import socket

from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.client import MQTTv5
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.read_ahead import ReadAhead
from tests.support.mqtt_packets import remaining_length


def publish_packet(topic: str, payload: bytes, qos: int, mid: int, retain: bool, with_props: bool) -> bytes:
    props = Properties(PacketTypes.PUBLISH)
    if with_props:
        props.UserProperty = [("gateway", "G001")]
        props.ContentType = "application/json"
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (mid.to_bytes(2, "big") if qos else b"") + props.pack() + payload
    return bytes([0x30 | (qos << 1) | int(retain)]) + remaining_length(len(body)) + body


packets = st.one_of(
    st.tuples(
        st.just("publish"),
        st.text(alphabet="abcXYZ/+中文0123", min_size=1, max_size=40),
        st.binary(max_size=150_000),
        st.integers(0, 2),
        st.integers(1, 65535),
        st.booleans(),
        st.booleans(),
    ),
    st.tuples(st.just("puback"), st.integers(1, 65535)),
    st.tuples(st.just("pingresp")),
)


def _read_plain_packet(ra: ReadAhead, feed) -> bytes:
    """One packet read the way paho reads it: type byte, length bytes, then the body."""

    def recv(n: int) -> bytes:
        while True:
            try:
                return ra.recv(n)
            except BlockingIOError:
                feed()

    head = recv(1)
    length_bytes = b""
    while True:
        b = recv(1)
        length_bytes += b
        if not b[0] & 0x80:
            break
    length, mult = 0, 1
    for b in length_bytes:
        length += (b & 127) * mult
        mult *= 128
    body = b""
    while len(body) < length:
        body += recv(length - len(body))
    return head + length_bytes + body


@settings(max_examples=150, deadline=None)
@given(st.lists(packets, min_size=1, max_size=12), st.integers(1, 9000))
def test_fast_path_agrees_with_paho_on_every_packet(items, slice_bytes):
    wire = []
    for item in items:
        if item[0] == "publish":
            _, topic, payload, qos, mid, retain, with_props = item
            wire.append(publish_packet(topic, payload, qos, mid, retain, with_props))
        elif item[0] == "puback":
            wire.append(bytes([0x40, 2]) + item[1].to_bytes(2, "big"))
        else:
            wire.append(bytes([0xD0, 0]))
    stream = b"".join(wire)
    a, b = socket.socketpair()
    a.setblocking(False)
    ra = ReadAhead(a)
    sent = 0

    def feed() -> None:
        nonlocal sent
        assert sent < len(stream), "the reader wants bytes the stream does not have"
        sent += b.send(stream[sent:sent + slice_bytes])

    try:
        for raw in wire:
            is_fast = raw[0] >> 4 == 3 and (raw[0] >> 1) & 3 < 2
            while True:
                got = ra.take_publish()
                if got is not None:
                    assert is_fast, "the fast path took a packet it must leave to paho"
                    ref = _packet.decode_publish(raw[0], raw[_fixed_header_len(raw):], MQTTv5)
                    assert got == (ref.topic.decode("utf-8", "replace"), ref.payload, ref.mid, ref.qos, ref.retain)
                    break
                if not is_fast:  # declined: paho's plain reads must see the packet whole
                    assert _read_plain_packet(ra, feed) == raw
                    break
                assert sent < len(stream), "a complete QoS 0/1 PUBLISH was declined"
                feed()
        assert ra.pending() == 0
    finally:
        a.close()
        b.close()


def _fixed_header_len(raw: bytes) -> int:
    i = 1
    while raw[i] & 0x80:
        i += 1
    return i + 1
