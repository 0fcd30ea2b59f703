"""A deterministic test fleet: registry YAML and the exact readings it publishes."""

from __future__ import annotations

import dataclasses

from domain.codec import encode_batch
from domain.topics import up_topic


@dataclasses.dataclass(frozen=True)
class Fleet:
    """Sensors S{gateway}-{n} under gateways G{n} of one coal-mine enterprise."""

    enterprise: str
    gateways: int
    sensors_per_gateway: int
    base_ms: int

    def registry_yaml(self) -> str:
        lines = [
            "enterprises:",
            f"  - {{id: {self.enterprise}, name: 测试企业, region: \"360100\", industry: coal_mine}}",
            "gateways:",
        ]
        lines += [f"  - {{id: G{g:03d}, enterprise: {self.enterprise}}}" for g in range(self.gateways)]
        lines.append("sensors:")
        for g in range(self.gateways):
            for s in range(self.sensors_per_gateway):
                lines.append(
                    f"  - {{id: S{g:03d}-{s:03d}, gateway: G{g:03d}, enterprise: {self.enterprise}, kind: temperature}}"
                )
        return "\n".join(lines) + "\n"

    def value(self, g: int, s: int, k: int) -> float:
        return round(20.0 + ((g * 7919 + s * 104729 + k * 31) % 1000) / 100.0, 2)

    def messages(self, count: int) -> list[tuple[str, bytes]]:
        """``count`` messages, round-robin over gateways; message k carries one reading per sensor."""
        out = []
        ids = [[f"S{g:03d}-{s:03d}" for s in range(self.sensors_per_gateway)] for g in range(self.gateways)]
        for k in range(count):
            g = k % self.gateways
            ts = self.base_ms + k
            values = [self.value(g, s, k) for s in range(self.sensors_per_gateway)]
            out.append((up_topic(self.enterprise, f"G{g:03d}"), encode_batch(ts, ids[g], values)))
        return out

    def expected(self, count: int) -> set[tuple[str, int, float]]:
        """(sensor code, ts in ms, value) of every reading in ``messages(count)``."""
        return {
            (f"S{k % self.gateways:03d}-{s:03d}", self.base_ms + k, self.value(k % self.gateways, s, k))
            for k in range(count)
            for s in range(self.sensors_per_gateway)
        }


async def stored(conn) -> list[tuple[str, int, float]]:
    rows = await conn.fetch(
        """SELECT s.code, (extract(epoch FROM r.ts) * 1000)::bigint AS ts_ms, r.value
           FROM readings r JOIN sensors s ON s.id = r.sensor"""
    )
    return [(r["code"], r["ts_ms"], r["value"]) for r in rows]


def now_ms() -> int:
    import time

    return int(time.time() * 1000)

