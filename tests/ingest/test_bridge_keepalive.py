"""The bridge keeps its connection through long holds of its reads, whatever its keepalive state.

paho closes a connection whose PINGRESP is a keepalive late while no bytes arrive. A PINGRESP
that paho asked for while a backlog was streaming in sits behind that backlog; if reads are then
held for longer than a keepalive, the first round after credit comes back must not let paho judge
the connection before it has read again.
"""

from __future__ import annotations

import asyncio
import uuid

from domain.topics import up_topic
from ingest.bridge import MqttBridge
from tests.support.publisher import Publisher
from tests.support.services import wait_for
from ingest.settings import MqttEndpoint

KEEPALIVE_S = 5
CREDIT = 50
BACKLOG = 3_000


def _bridge(broker, client_id: str) -> MqttBridge:
    return MqttBridge(MqttEndpoint.parse(broker.url), client_id, ["yj/v1/+/+/up"],
                      session_expiry_s=600, receive_maximum=CREDIT, keepalive_s=KEEPALIVE_S)


async def test_connection_survives_slow_drain_then_a_long_hold_then_the_rest(broker):
    client_id = f"yj-ka-{uuid.uuid4().hex[:6]}"
    first = _bridge(broker, client_id)
    first.start()
    await first.wait_subscribed(10)
    first.stop()
    pub = Publisher(broker.port)
    pub.publish_all([(up_topic("E1", "G000"), b"%d" % i) for i in range(BACKLOG)])
    await asyncio.to_thread(pub.wait_acked)
    pub.close()

    bridge = _bridge(broker, client_id)
    bridge.start()
    await bridge.wait_subscribed(10)
    got: list[bytes] = []

    async def take(n: int) -> None:
        for m in await bridge.take(n, 0.5):
            got.append(m.payload)
            bridge.ack([m.mid])

    loop = asyncio.get_running_loop()
    until = loop.time() + 1.5 * KEEPALIVE_S  # a slow drain: paho pings with the backlog streaming in
    while loop.time() < until:
        await take(5)
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.5 * KEEPALIVE_S)  # reads held: the inbox is full and nothing is taken
    assert bridge.pending() == CREDIT
    while len(got) < BACKLOG:
        await take(500)
    await wait_for(lambda: bridge.connected, 5, what="connected")
    bridge.stop()
    assert bridge.connects == 1, "the connection was lost"
    assert sorted(int(p) for p in got) == list(range(BACKLOG))
