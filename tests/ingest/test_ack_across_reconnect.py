"""A message received on a connection that has since dropped is acknowledged only as the broker's
resend of it on the new connection, never twice.

When the connection drops, the pipeline still commits what it took on the old connection, and the
broker resends every unacknowledged message on the new one with its original packet id. If the
commits of the old copies were acknowledged on the new connection too, each packet id would be
acknowledged twice; Mosquitto 2.0.11, which ignores the collector's Receive Maximum and so holds
more than 65,535 messages in flight in a long backlog (their packet ids repeat), takes the second
acknowledgement for the next message with that packet id: a message never committed leaves the
broker's in-flight list (lost if the connection drops before it is written out) and a committed one
stays in it (redelivered at the next reconnect). The broker's debug log is the witness.
"""

from __future__ import annotations

import asyncio
import re
import socket
import uuid

from domain.topics import up_topic
from ingest.bridge import MqttBridge
from tests.support.publisher import Publisher
from tests.support.services import Broker, wait_for
from yujing.settings import MqttEndpoint

MESSAGES = 5


def pubacks_received(broker: Broker, client_id: str) -> list[int]:
    text = (broker.data_dir / "mosquitto.log").read_text(errors="replace")
    return [int(m) for m in re.findall(rf"Received PUBACK from {re.escape(client_id)} \(Mid: (\d+)", text)]


async def take_all(bridge: MqttBridge, n: int) -> list:
    got: list = []
    for _ in range(100):
        got += await bridge.take(n - len(got), 0.2)
        if len(got) >= n:
            break
    assert len(got) == n
    return got


async def test_old_connection_commits_are_not_acknowledged_on_the_new_connection():
    broker = Broker(overrides={"log_type": "all"})
    broker.start()
    client_id = f"yj-reack-{uuid.uuid4().hex[:6]}"
    bridge = MqttBridge(MqttEndpoint.parse(broker.url), client_id, ["yj/v1/+/+/up"],
                        session_expiry_s=600, receive_maximum=100, keepalive_s=30)
    try:
        bridge.start()
        await bridge.wait_subscribed(10)
        pub = Publisher(broker.port)
        pub.publish_all([(up_topic("E1", "G000"), b"%d" % i) for i in range(MESSAGES)])
        await asyncio.to_thread(pub.wait_acked)
        pub.close()
        first = await take_all(bridge, MESSAGES)  # taken, not yet committed

        # The connection drops (as on a stall of the host or a keepalive timeout).
        bridge._client.socket().shutdown(socket.SHUT_RDWR)  # noqa: SLF001 (the test cuts the real socket)
        await wait_for(lambda: bridge.connects == 2 and bridge.connected, 20, what="reconnected")
        resent = await take_all(bridge, MESSAGES)  # the broker's resend, same packet ids
        assert sorted(m.payload for m in resent) == sorted(m.payload for m in first)

        # The old copies commit now (their acknowledgements are due), then the resent ones do
        # (stored already: duplicates, acknowledged).
        bridge.ack([m.mid for m in first])
        bridge.ack([m.mid for m in resent])
        await wait_for(lambda: len(pubacks_received(broker, client_id)) >= MESSAGES, 10, what="PUBACKs")
        await asyncio.sleep(1.0)  # any second acknowledgement would be in the log by now
        acked = pubacks_received(broker, client_id)
        assert len(acked) == MESSAGES, f"packet ids acknowledged twice: {acked}"
        assert len(set(acked)) == MESSAGES
    finally:
        bridge.stop()
        broker.close()
