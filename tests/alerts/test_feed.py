"""The live feed: bounded per-client queues; a client that falls behind is dropped and counted."""

from alerts.feed import CLOSED, AlertFeed


async def test_slow_client_is_dropped_and_counted():
    feed = AlertFeed(queue_size=3)
    fast, slow = feed.subscribe(), feed.subscribe()
    only_e2 = feed.subscribe(accept=lambda e: e.get("enterprise") == "E002")
    got = []
    for i in range(5):
        feed.publish({"seq": i, "enterprise": "E001"})
        got.append(await fast.get())
    assert [e["seq"] for e in got] == [0, 1, 2, 3, 4]
    assert feed.dropped == 1 and feed.subscribers == 2  # `slow` never read
    assert slow.queue.get_nowait() is CLOSED and slow.closed
    assert [e async for e in slow] == []
    assert only_e2.queue.empty()
    feed.publish({"seq": 9, "enterprise": "E002"})
    assert (await only_e2.get())["seq"] == 9
    with feed.subscribe() as sub:
        assert feed.subscribers == 3
    assert feed.subscribers == 2 and sub.closed
