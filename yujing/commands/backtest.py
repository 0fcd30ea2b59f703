"""``yujing backtest``: try the detectors on one sensor's history before deploying a change."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Annotated

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
    stamps: list[str] = []
    raw_values: list[str] = []
    with input.open(newline="", encoding="utf-8-sig") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or (lineno == 1 and row[0].strip().lower() in ("timestamp", "time", "ts")):
                continue
            if len(row) < 2:
                raise typer.BadParameter(f"{input}:{lineno}: expected timestamp,value")
            stamps.append(row[0])
            raw_values.append(row[1])
    try:
        ts_us = np.array([parse_timestamp(s) for s in stamps], dtype=np.int64)
    except TimestampError as exc:
        raise typer.BadParameter(str(exc)) from None
    values = np.array([_value(v) for v in raw_values], dtype=np.float64)
    res = run_backtest(ts_us, values, kind, location_class)
    with output.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER_OUT)
        for i in range(len(stamps)):
            w.writerow([stamps[i], raw_values[i], res.score[i], res.level[i], res.event[i], res.detector[i]])
