"""``yujing backtest``: try the detectors on one sensor's history before deploying a change."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Annotated, NoReturn

import numpy as np
import typer

from detectors.backtest import TimestampError, parse_timestamp, run_backtest
from domain.catalog import UnknownKindError, default_setpoints, get_kind

HEADER_OUT = ["timestamp", "value", "score", "level", "event", "detector"]


def _value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def backtest(
    input: Annotated[Path, typer.Option("--input", help="CSV of timestamp,value (one sensor)")],
    output: Annotated[Path, typer.Option("--output", help="CSV to write: timestamp,value,score,level,event,detector")],
    kind: Annotated[str | None, typer.Option("--kind", help="sensor kind id (catalog); none: statistical detectors only")] = None,
    location_class: Annotated[str | None, typer.Option("--location-class", help="location class for the setpoints, e.g. T1")] = None,
) -> None:
    """Run the detectors over a CSV of timestamp,value and write one row per input row."""
    try:
        if kind:
            get_kind(kind)
            default_setpoints(kind, location_class or "")
    except (UnknownKindError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    stamps, raw_values = _read_input(input)
    try:
        ts_us = np.array([parse_timestamp(s) for s in stamps], dtype=np.int64)
    except TimestampError as exc:
        raise typer.BadParameter(str(exc)) from None
    values = np.array([_value(v) for v in raw_values], dtype=np.float64)
    res = run_backtest(ts_us, values, kind, location_class)
    try:
        with output.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(HEADER_OUT)
            for i in range(len(stamps)):
                w.writerow([stamps[i], raw_values[i], res.score[i], res.level[i], res.event[i], res.detector[i]])
    except OSError as exc:
        _refuse(f"cannot write --output {output} ({exc.strerror or exc}); give a path in a directory that exists "
                "and you may write to")


def _refuse(sentence: str) -> NoReturn:
    """One line on stderr naming the problem and the fix, exit status 2 (no traceback)."""
    typer.echo(f"yujing backtest: {sentence}", err=True)
    raise typer.Exit(2)


def _read_input(path: Path) -> tuple[list[str], list[str]]:
    """The timestamp and value texts of a CSV of timestamp,value (an optional header row)."""
    stamps: list[str] = []
    raw_values: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or (lineno == 1 and row[0].strip().lower() in ("timestamp", "time", "ts")):
                    continue
                if len(row) < 2:
                    _refuse(f"{path}:{lineno}: expected timestamp,value; each row needs both")
                stamps.append(row[0])
                raw_values.append(row[1])
    except OSError as exc:
        _refuse(f"cannot read --input {path} ({exc.strerror or exc}); give an existing CSV file of timestamp,value")
    except (UnicodeDecodeError, csv.Error) as exc:
        _refuse(f"--input {path} is not a UTF-8 CSV ({exc}); export the series as UTF-8 timestamp,value rows")
    if not stamps:
        _refuse(f"--input {path} holds no rows; give a CSV of timestamp,value with at least one row")
    return stamps, raw_values
