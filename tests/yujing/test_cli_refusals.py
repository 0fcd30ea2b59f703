"""A command given a wrong input refuses in one line that names the problem and the fix, with a
non-zero exit status, never a traceback (`yujing backtest`; `yujing loadtest` is tested with the
load runner in tests/simulators/test_load.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _backtest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yujing", "backtest", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("make_input, says", [
    (lambda d: d / "missing.csv", "cannot read --input"),
    (lambda d: d, "cannot read --input"),  # a directory
    (lambda d: _write(d / "empty.csv", b"timestamp,value\n"), "holds no rows"),
    (lambda d: _write(d / "binary.csv", b"\xff\xfe\x00\x01garbage\n"), "not a UTF-8 CSV"),
    (lambda d: _write(d / "one.csv", b"2026-01-01T00:00:00+08:00\n"), "expected timestamp,value"),
])
def test_backtest_refuses_a_bad_input_in_one_line(tmp_path, make_input, says):
    r = _backtest("--input", str(make_input(tmp_path)), "--output", str(tmp_path / "out.csv"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("yujing backtest: ") and says in lines[0], r.stderr
    assert not (tmp_path / "out.csv").exists()


def test_backtest_refuses_an_output_it_cannot_write(tmp_path):
    src = _write(tmp_path / "in.csv", b"timestamp,value\n2026-01-01T00:00:00+08:00,0.3\n")
    r = _backtest("--input", str(src), "--output", str(tmp_path / "no" / "such" / "dir.csv"))
    assert r.returncode == 2 and "cannot write --output" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_backtest_still_runs_a_good_input(tmp_path):
    src = _write(tmp_path / "in.csv", b"timestamp,value\n2026-01-01T00:00:00+08:00,0.3\n2026-01-01T00:00:10+08:00,0.4\n")
    r = _backtest("--input", str(src), "--output", str(tmp_path / "out.csv"), "--kind", "methane")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "timestamp,value,score,level,event,detector"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
