"""Detection runs on every decoded batch inside the service, before the write is committed."""

from __future__ import annotations

import asyncio

from domain.codec import encode_batch
from domain.severity import FindingEvent, Severity
from domain.topics import up_topic
from store.registry import import_registry
from store.registry_file import parse_registry_file
from tests.support.fleet import now_ms
from tests.support.publisher import Publisher
from tests.support.running import running_service, service_settings
from tests.support.services import wait_for

REGISTRY = """
enterprises: [{id: E1, name: 某煤矿, region: "360100", industry: coal_mine}]
gateways:    [{id: G1, enterprise: E1}]
sensors:     [{id: CH4-01, gateway: G1, kind: methane, location: 采煤工作面, location_class: T1}]
"""


async def test_power_cut_crossing_raises_an_alarm_finding(db_url, db, broker):
    await import_registry(db, parse_registry_file(REGISTRY))
    sensor_id = await db.fetchval("SELECT id FROM sensors WHERE code = 'CH4-01'")
    async with running_service(service_settings(db_url, broker.url)) as service:
        pub = Publisher(broker.port)
        t = now_ms()
        pub.publish_all([(up_topic("E1", "G1"), encode_batch(t, ["CH4-01"] * 3, [0.3, 0.5, 1.62], None, [t - 2000, t - 1000, t]))])
        await asyncio.to_thread(pub.wait_acked)

        def alarm():
            for batch in service.findings:
                for f in batch.rows():
                    if f.subject == sensor_id and f.rule == "limit" and f.severity >= Severity.ALARM:
                        return f
            return None

        finding = await wait_for(alarm, 10, what="power-cut finding")
        pub.close()
    assert finding.event in (FindingEvent.RAISE, FindingEvent.UPDATE)
    assert finding.value == 1.62 and finding.setpoint == 1.5
