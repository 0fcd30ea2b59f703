from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from detectors.backtest import parse_timestamp, run_backtest
from yujing.commands.backtest import backtest


def series(n=600, seed=4):
    rng = np.random.default_rng(seed)
    ts = (1_700_000_000 + 10 * np.arange(n)) * 1_000_000
    v = 0.3 + 0.02 * rng.standard_normal(n)
    v[400:] += np.linspace(0, 1.6, n - 400)
    v[100] = np.nan
    return ts.astype(np.int64), v


@pytest.mark.parametrize("kind", [None, "methane"])
def test_backtest_is_causal(kind):
    ts, v = series()
    full = run_backtest(ts, v, kind, "T1" if kind else None)
    for cut in (50, 301, 455, 599):
        part = run_backtest(ts[:cut], v[:cut], kind, "T1" if kind else None)
        for col in ("score", "level", "event", "detector"):
            assert getattr(part, col) == getattr(full, col)[:cut], (cut, col)
    if kind:
        assert "raise" in full.event and any("limit" in d for d in full.detector)


def test_parse_timestamp_forms():
    assert parse_timestamp("1700000000") == 1_700_000_000_000_000
    assert parse_timestamp("1700000000123") == 1_700_000_000_123_000
    assert parse_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000_000_000
    assert parse_timestamp("2023-11-15T06:13:20+08:00") == 1_700_000_000_000_000


def test_cli_echoes_timestamps_and_writes_one_row_per_input(tmp_path):
    src = tmp_path / "in.csv"
    ts, v = series(600)
    stamps = [f"{t // 1000}" if i % 2 else f"{t / 1e6:.1f}" for i, t in enumerate(ts.tolist())]
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        for s, x in zip(stamps, v, strict=True):
            w.writerow([s, "" if np.isnan(x) else f"{x:.4f}"])
    out = tmp_path / "out.csv"
    backtest(input=src, output=out, kind="methane", location_class="T1")
    got = list(csv.reader(out.open()))
    assert got[0] == ["timestamp", "value", "score", "level", "event", "detector"]
    assert [r[0] for r in got[1:]] == stamps
    for r in got[1:]:
        assert r[2] == "" or 0.0 <= float(r[2]) <= 1.0


REGISTRY = """
regions:     [{code: "360100", name: 南昌市}]
enterprises:
  - {id: E1, name: 某煤矿, region: "360100", industry: coal_mine}
  - {id: E2, name: 另一煤矿, region: "360100", industry: coal_mine}
zones:
  - {id: WF1, enterprise: E1, name: 工作面, adjacent: [RW1]}
  - {id: RW1, enterprise: E1, name: 回风巷}
gateways:
  - {id: G1, enterprise: E1, zone: WF1, expected_interval_s: 10}
  - {id: G1, enterprise: E2, expected_interval_s: 10}
sensors:
  - {id: CH4-01, gateway: G1, enterprise: E1, kind: methane, location_class: T1, expected_interval_s: 10}
  - {id: FAN-01, gateway: G1, enterprise: E1, kind: fan_state, expected_interval_s: 10}
  - {id: CO-01, gateway: G1, enterprise: E1, kind: co, zone: RW1, expected_interval_s: 10}
  - {id: CH4-01, gateway: G1, enterprise: E2, kind: methane, location_class: T1, expected_interval_s: 10}
"""


def long_rows(n=125, seed=9):
    """E1's methane climbs with the fan off from reading 100; E1's CO-01 stops at reading 60; E2's
    CH4-01 (the same code, another enterprise) stays flat."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        ts = 1_700_000_000 + 10 * i
        ch4 = 0.3 + 0.06 * max(0, i - 100) + 0.01 * rng.standard_normal()
        rows.append((ts, "E1", "CH4-01", round(ch4, 2)))
        rows.append((ts, "E1", "FAN-01", 1.0 if i < 100 else 0.0))
        if i < 60:
            rows.append((ts, "E1", "CO-01", 3.0))
        rows.append((ts, "E2", "CH4-01", round(0.3 + 0.01 * rng.standard_normal(), 2)))
    return rows


def fleet_inputs(tmp_path, rows):
    from yujing.commands.backtest_registry import load_registry_snapshot

    reg = tmp_path / "registry.yaml"
    reg.write_text(REGISTRY, encoding="utf-8")
    snap = load_registry_snapshot(reg)
    sensor = np.array([snap.sensor_ids[e][c] for _, e, c, _ in rows], dtype=np.int32)
    ts = np.array([t * 1_000_000 for t, _, _, _ in rows], dtype=np.int64)
    v = np.array([x for *_, x in rows], dtype=np.float64)
    return reg, snap, sensor, ts, v


def test_fleet_backtest_runs_the_full_set_and_is_causal(tmp_path):
    from detectors.backtest import run_fleet_backtest

    rows = long_rows()
    _, snap, sensor, ts, v = fleet_inputs(tmp_path, rows)
    full, summary = run_fleet_backtest(snap, sensor, ts, v)
    found = {(o.enterprise, o.subject, d) for o in full for d, e in zip(o.detector.split(";"), o.event.split(";"), strict=True)
             if e == "raise"}
    assert ("E1", "CO-01", "nodata") in found  # the clock is the data's: a sensor that stops is stale
    assert ("E1", "zone:WF1", "compound.methane_rising_fan_off") in found
    assert ("E1", "CH4-01", "limit") in found and not any(e == "E2" for e, _, _ in found)
    assert not any(d == "gateway_offline" for *_, d in found)  # its gateway still speaks
    assert summary.raises[("compound.methane_rising_fan_off", "alarm")] == 1
    assert summary.sensor_hours > 0 and summary.raises_per_1000_sensor_hours > 0
    for cut in (40, 305, len(rows) - 1):
        part, _ = run_fleet_backtest(snap, sensor[:cut], ts[:cut], v[:cut])
        assert part == [o for o in full if o.row < cut], cut


def test_cli_long_format_with_registry_summary_and_detectors_config(tmp_path):
    from typer.testing import CliRunner

    from yujing.cli import app

    rows = long_rows()
    reg, *_ = fleet_inputs(tmp_path, rows)
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "enterprise", "sensor", "value"])
        w.writerows(rows)
    out, summ = tmp_path / "out.csv", tmp_path / "summary.json"
    res = CliRunner().invoke(app, ["backtest", "--input", str(src), "--output", str(out), "--registry", str(reg),
                                   "--summary", str(summ)])
    assert res.exit_code == 0, res.output
    assert "每千传感器小时" in res.output and "compound.methane_rising_fan_off" in res.output
    got = list(csv.reader(out.open()))
    assert got[0] == ["timestamp", "enterprise", "sensor", "value", "score", "level", "event", "detector"]
    mine = [r for r in got[1:] if r[2] == "CH4-01"]
    assert {r[1] for r in mine} == {"E1", "E2"}
    assert len([r for r in got[1:] if r[3] != ""]) == len(rows)  # every input row, once, with its value
    doc = json.loads(summ.read_text())
    assert {"rule": "nodata", "severity": "notice", "count": 1} in doc["raises"]
    # a change to try: only the setpoint ladders
    cfg = tmp_path / "detectors.yaml"
    cfg.write_text("detectors:\n  enabled: [limit]\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["backtest", "--input", str(src), "--output", str(out), "--registry", str(reg),
                                   "--detectors-config", str(cfg), "--lang", "en"])
    assert res.exit_code == 0, res.output
    assert "per 1,000 sensor-hours" in res.output and "compound" not in res.output and "limit" in res.output
    # an unknown sensor is refused with the fix
    with src.open("a", newline="") as fh:
        csv.writer(fh).writerow([1_700_009_999, "E2", "CO-01", 1.0])
    res = CliRunner().invoke(app, ["backtest", "--input", str(src), "--output", str(out), "--registry", str(reg)])
    assert res.exit_code == 2 and "not in --registry" in res.output
