"""MQTT wire details that tests and benchmarks write by hand (raw publishers, packet fixtures)."""

from __future__ import annotations


def remaining_length(n: int) -> bytes:
    """MQTT's variable-byte integer (the fixed header's Remaining Length), 1–4 bytes."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
