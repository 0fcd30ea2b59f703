from __future__ import annotations

import csv

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
