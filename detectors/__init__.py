"""Vectorised detector engine: readings in, findings (state changes) out.

Public surface::

    from detectors import Engine, DetectorConfig
    engine = Engine(DetectorConfig.from_config(yaml_section))
    engine.set_registry(snapshot)                 # on start and on every registry change
    findings = engine.update(batch)               # every decoded ReadingBatch, before commit
    findings = engine.gateway_status(ids, online, ts_us)
    findings = engine.tick(now_us)                # no-data / gateway silence, ~1 s cadence
    current = engine.active()                     # raised conditions, to reconcile downstream
    await detectors.rebuild.rebuild(engine, conn, now_us, lookback_s)   # after a restart

Rule ids and their severities (the alerts stage grades by kind, rule and severity):

- ``limit``: high setpoint ladder — ``notice`` (pre-warning override), ``warning`` (alarm 报警,
  level 1, H), ``alarm`` (power-cut 断电, level 2, HH). Clears at the restore (复电) / clear value.
- ``limit_low``: low ladder — ``warning`` (L, 欠氧), ``alarm`` (LL).
- ``over_range`` / ``under_range``: ``alarm`` where the kind has setpoints on that side, else ``notice``.
- ``fault``: ``notice`` (FAULT or DISCONNECTED readings).
- ``rate``, ``ttt``, ``anomaly``, ``window``, ``stuck``, ``jump``, ``nodata``: ``notice``.
- ``equipment``: ``notice``, on the channel of an equipment group that departs from the others.
- ``gateway_offline`` (subject kind gateway): ``warning``.
- ``compound.<name>`` (subject kind zone): the rule's configured severity.

See :mod:`detectors.rules` for the table and each detector module for its method and cost.
"""

from detectors.config import CompoundRule, DetectorConfig, DetectorConfigError, KindParams
from detectors.engine import Engine

__all__ = ["CompoundRule", "DetectorConfig", "DetectorConfigError", "Engine", "KindParams"]
