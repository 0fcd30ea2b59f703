"""The stepped load runner against the real service: a short two-step ramp well below capacity."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from simulators.load import (
    COMMITTED,
    PROBE_ENTERPRISE,
    LoadPlan,
    format_report,
    histogram_percentiles,
    load_fleet,
    parse_metrics,
    run_load,
    write_load_registry,
    write_outputs,
)
from store.registry import import_registry
from store.registry_file import parse_registry_file
from tests.support.running import running_service, service_settings
from tests.support.services import free_port

PLAN = LoadPlan(gateways=20, readings_per_message=50, rate=2_000.0, steps=2, dwell_s=5.0, probe_interval_s=1.0,
                connections=2)


@pytest.mark.timeout(120)
async def test_two_step_ramp_reports_committed_rate_lag_and_alert_latency(db_url, db, broker, tmp_path):
    fleet = load_fleet(PLAN.gateways, PLAN.readings_per_message, PLAN.seed)
    registry = tmp_path / "registry.yaml"
    write_load_registry(fleet, registry)
    await import_registry(db, parse_registry_file(registry.read_text(encoding="utf-8")))
    port = free_port()
    settings = service_settings(db_url, broker.url, metrics_port=port, detectors_rebuild_s=0)
    async with running_service(settings):
        report = await asyncio.to_thread(run_load, PLAN, broker.tools_url,
                                         metrics_url=f"http://127.0.0.1:{port}/metrics",
                                         service_pid=os.getpid())
    print(format_report(report))
    assert [s.target_readings_s for s in report.steps] == [1_000.0, 2_000.0]
    for s in report.steps:
        assert s.offered_readings_s == pytest.approx(s.target_readings_s, rel=0.25)
        assert s.committed_readings_s is not None and s.committed_share > 0.8, s
        assert s.lag_s["p50"] is not None and s.lag_s["p50"] < 2.0
        assert s.cpu_percent_mean is not None and s.rss_mb_max > 0
    assert report.knee_step is None, report.knee_reason
    assert report.alert_probes_answered >= 0.8 * report.alert_probes_injected > 0
    assert report.alert_latency_s["p50"] < 2.0
    assert not report.dead_letters, report.dead_letters
    stored = await db.fetchval("SELECT count(*) FROM readings r JOIN sensors s ON s.id = r.sensor WHERE s.enterprise = 'LOAD'")
    assert stored == report.publisher["readings"]  # every published reading stored once
    probes = await db.fetchval("SELECT count(*) FROM alerts a JOIN sensors s ON s.id = a.subject AND a.subject_kind = 1"
                               " WHERE s.enterprise = $1 AND a.grade = 3", PROBE_ENTERPRISE)
    assert probes >= report.alert_probes_answered
    js, png = write_outputs(report, tmp_path / "out")
    assert json.loads(js.read_text())["steps"][1]["target_readings_s"] == 2_000.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_histogram_percentiles_from_two_scrapes():
    before = parse_metrics('x_bucket{le="0.1"} 0\nx_bucket{le="1.0"} 0\nx_bucket{le="+Inf"} 0\n')
    after = parse_metrics('# HELP x\nx_bucket{le="0.1"} 50\nx_bucket{le="1.0"} 100\nx_bucket{le="+Inf"} 100\n'
                          f"{COMMITTED} 7\n")
    p = histogram_percentiles(before, after, "x", (0.25, 0.5, 0.75))
    assert p["p25"] == pytest.approx(0.05) and p["p50"] == pytest.approx(0.1) and p["p75"] == pytest.approx(0.55)
    assert histogram_percentiles(after, after, "x")["p50"] is None
    assert after[COMMITTED] == 7
