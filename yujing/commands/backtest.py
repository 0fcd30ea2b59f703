"""``yujing backtest``: try the detectors on recorded readings before deploying a change.

One sensor: ``--input`` of ``timestamp,value`` (``--kind``, ``--location-class``). Many sensors:
``--registry registry.yaml`` and ``--input`` of ``timestamp,enterprise,sensor,value`` (sensor
codes are unique within an enterprise); the full detector set runs, and a summary is printed.
``--detectors-config`` takes a YAML of the ``detectors`` section (as in the service's settings).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Annotated, NoReturn

import numpy as np
import typer
import yaml

from detectors.backtest import FleetSummary, TimestampError, parse_timestamp, run_backtest, run_fleet_backtest
from detectors.config import DetectorConfig, DetectorConfigError
from domain.catalog import UnknownKindError, default_setpoints, get_kind
from store.registry_file import RegistryFileError
from yujing.commands.backtest_registry import load_registry_snapshot

HEADER_OUT = ["timestamp", "value", "score", "level", "event", "detector"]
HEADER_OUT_FLEET = ["timestamp", "enterprise", "sensor", "value", "score", "level", "event", "detector"]
HEADER_WORDS = ("timestamp", "time", "ts")


def _value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def backtest(
    input: Annotated[Path, typer.Option("--input", help="CSV of timestamp,value (one sensor), or of "
                                        "timestamp,enterprise,sensor,value with --registry")],
    output: Annotated[Path, typer.Option("--output", help="CSV to write: timestamp,[enterprise,sensor,]value,score,level,event,detector")],
    kind: Annotated[str | None, typer.Option("--kind", help="sensor kind id (catalog); none: statistical detectors only")] = None,
    location_class: Annotated[str | None, typer.Option("--location-class", help="location class for the setpoints, e.g. T1")] = None,
    registry: Annotated[Path | None, typer.Option("--registry", help="registry YAML (docs/registry.md): many sensors, the full detector set")] = None,
    detectors_config: Annotated[Path | None, typer.Option("--detectors-config", help="YAML of the detectors section to try")] = None,
    summary: Annotated[Path | None, typer.Option("--summary", help="also write the summary here as JSON")] = None,
    lang: Annotated[str, typer.Option("--lang", help="language of the summary: zh or en")] = "zh",
) -> None:
    """Run the detectors over a CSV and write one row per input row (plus the findings about
    gateways and zones that came with a row)."""
    config = _config(detectors_config)
    if registry is not None:
        _fleet(input, output, registry, config, summary, lang)
        return
    try:
        if kind:
            get_kind(kind)
            default_setpoints(kind, location_class or "")
    except (UnknownKindError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    rows = _read_input(input, 2, "timestamp,value")
    stamps, raw_values = [r[0] for r in rows], [r[1] for r in rows]
    ts_us = _stamps(stamps)
    values = np.array([_value(v) for v in raw_values], dtype=np.float64)
    res = run_backtest(ts_us, values, kind, location_class, config)
    _write(output, HEADER_OUT, ([stamps[i], raw_values[i], res.score[i], res.level[i], res.event[i], res.detector[i]]
                                for i in range(len(stamps))))


def _fleet(input: Path, output: Path, registry: Path, config: DetectorConfig | None, summary: Path | None,
           lang: str) -> None:
    try:
        snap = load_registry_snapshot(registry)
    except OSError as exc:
        _refuse(f"cannot read --registry {registry} ({exc.strerror or exc}); give a registry YAML (docs/registry.md)")
    except (UnicodeDecodeError, RegistryFileError, ValueError) as exc:
        _refuse(f"--registry {registry}: {exc}")
    rows = _read_input(input, 4, "timestamp,enterprise,sensor,value")
    sensor = np.zeros(len(rows), dtype=np.int32)
    for i, (_, ent, code, _) in enumerate(rows):
        sid = snap.sensor_ids.get(ent.strip(), {}).get(code.strip())
        if sid is None:
            _refuse(f"{input}: row {i + 1}: sensor {code!r} of enterprise {ent!r} is not in --registry {registry}; "
                    "register it or drop its rows")
        sensor[i] = sid
    ts_us = _stamps([r[0] for r in rows])
    values = np.array([_value(r[3]) for r in rows], dtype=np.float64)
    out, summ = run_fleet_backtest(snap, sensor, ts_us, values, config)
    _write(output, HEADER_OUT_FLEET, (
        [rows[o.row][0], o.enterprise, o.subject, rows[o.row][3] if o.own else "", o.score, o.level, o.event,
         o.detector] for o in out))
    typer.echo(summary_text(summ, len(rows), lang))
    if summary is not None:
        doc = {"readings": len(rows), "sensor_hours": summ.sensor_hours,
               "raises_per_1000_sensor_hours": summ.raises_per_1000_sensor_hours,
               "raises": [{"rule": r, "severity": s, "count": n} for (r, s), n in summ.raises.items()]}
        _write_text(summary, json.dumps(doc, ensure_ascii=False, indent=1))


def summary_text(s: FleetSummary, readings: int, lang: str = "zh") -> str:
    """Findings raised by rule and severity, and raises per 1,000 sensor-hours."""
    total = sum(s.raises.values())
    rate = s.raises_per_1000_sensor_hours
    per = f"{rate:.1f}" if math.isfinite(rate) else "—"
    if lang == "en":
        lines = [f"{readings:,} readings, {s.sensor_hours:,.1f} sensor-hours: {total} raises, {per} per 1,000 sensor-hours"]
        lines += [f"  {rule:<40} {sev:<8} {n}" for (rule, sev), n in s.raises.items()]
    else:
        lines = [f"{readings:,} 条读数，{s.sensor_hours:,.1f} 传感器小时：触发 {total} 次，每千传感器小时 {per} 次"]
        lines += [f"  {rule:<40} {sev:<8} {n}" for (rule, sev), n in s.raises.items()]
    return "\n".join(lines)


def _config(path: Path | None) -> DetectorConfig | None:
    if path is None:
        return None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return DetectorConfig.from_config(raw.get("detectors", raw) if isinstance(raw, dict) else raw)
    except OSError as exc:
        _refuse(f"cannot read --detectors-config {path} ({exc.strerror or exc}); give a YAML of the detectors section")
    except (yaml.YAMLError, UnicodeDecodeError, DetectorConfigError, TypeError, AttributeError) as exc:
        _refuse(f"--detectors-config {path}: {exc}")


def _stamps(stamps: list[str]) -> np.ndarray:
    try:
        return np.array([parse_timestamp(s) for s in stamps], dtype=np.int64)
    except TimestampError as exc:
        raise typer.BadParameter(str(exc)) from None


def _write(output: Path, header: list[str], rows) -> None:
    try:
        with output.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
    except OSError as exc:
        _refuse(f"cannot write --output {output} ({exc.strerror or exc}); give a path in a directory that exists "
                "and you may write to")


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        _refuse(f"cannot write --summary {path} ({exc.strerror or exc})")


def _refuse(sentence: str) -> NoReturn:
    """One line on stderr naming the problem and the fix, exit status 2 (no traceback)."""
    typer.echo(f"yujing backtest: {sentence}", err=True)
    raise typer.Exit(2)


def _read_input(path: Path, width: int, shape: str) -> list[list[str]]:
    """The first ``width`` texts of each row of a CSV (an optional header row)."""
    rows: list[list[str]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or (lineno == 1 and row[0].strip().lower() in HEADER_WORDS):
                    continue
                if len(row) < width:
                    _refuse(f"{path}:{lineno}: expected {shape}; each row needs all {width}")
                rows.append(row[:width])
    except OSError as exc:
        _refuse(f"cannot read --input {path} ({exc.strerror or exc}); give an existing CSV file of {shape}")
    except (UnicodeDecodeError, csv.Error) as exc:
        _refuse(f"--input {path} is not a UTF-8 CSV ({exc}); export the readings as UTF-8 {shape} rows")
    if not rows:
        _refuse(f"--input {path} holds no rows; give a CSV of {shape} with at least one row")
    return rows
