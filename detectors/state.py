"""Struct-of-arrays state: named numpy columns indexed by a dense id, grown on demand."""

from __future__ import annotations

import numpy as np

from detectors.findings import RAISE
from detectors.ordering import NO_TS
from domain.severity import Severity


class Columns:
    """A set of parallel arrays of one length; ``spec`` maps name -> (dtype, fill, width).

    Width 1 makes a 1-D array of shape (n,), width k > 1 a 2-D array of shape (n, k).
    Columns are attributes: ``cols.mean[idx]``.
    """

    def __init__(self, spec: dict[str, tuple[object, object, int]], n: int = 0) -> None:
        self._spec = {k: (np.dtype(d), f, w) for k, (d, f, w) in spec.items()}
        self.size = 0
        for name, (dtype, fill, width) in self._spec.items():
            shape = (0,) if width == 1 else (0, width)
            setattr(self, name, np.full(shape, fill, dtype=dtype))
        self.grow(n)

    def grow(self, n: int) -> None:
        """Resize to ``n`` rows, keeping existing rows and filling new ones."""
        if n <= self.size:
            return
        for name, (dtype, fill, width) in self._spec.items():
            old = getattr(self, name)
            shape = (n,) if width == 1 else (n, width)
            new = np.full(shape, fill, dtype=dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)
        self.size = n

    def reset(self, idx: np.ndarray) -> None:
        """Return rows ``idx`` to their fill values (a sensor whose kind changed)."""
        for name, (_, fill, _) in self._spec.items():
            getattr(self, name)[idx] = fill

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self._spec)


class ColumnDetector:
    """A detector whose configuration (``cfg``) and state (``st``) are :class:`Columns` indexed by
    the dense sensor id."""

    cfg: Columns
    st: Columns

    def grow(self, n: int) -> None:
        self.cfg.grow(n)
        self.st.grow(n)


def decide_scored(rule: str, cfg: Columns, st: Columns, s, t, x, score, flagged, ready, em) -> None:
    """Deciding, apart from scoring: raise where ``flagged`` (unless within the refractory period
    after the last clear), hold while ``ready`` and the score stays at or above the clear level,
    clear otherwise; emit the transitions. Columns used: cfg ``refr_us``, ``clr``; st ``score``,
    ``on``, ``raised_at``, ``last_clear``. All arrays have the length of ``s`` (sensor ids)."""
    st.score[s] = score
    was = st.on[s]
    lc = st.last_clear[s]
    can_raise = (lc == NO_TS) | ((t - lc) >= cfg.refr_us[s])
    now = (flagged & (was | can_raise)) | (was & ready & (score >= cfg.clr[s]))
    if not (now.any() or was.any()):
        return
    st.on[s] = now
    new = now & ~was
    st.raised_at[s[new]] = t[new]
    cleared = was & ~now
    st.last_clear[s[cleared]] = t[cleared]
    em.transitions(rule, s, was, now, Severity.NOTICE, t, x, score)


def emit_active_scored(rule: str, st: Columns, em) -> None:
    """The raised conditions of a scored detector, as ``raise`` rows (see :func:`decide_scored`)."""
    s = np.flatnonzero(st.on)
    em.emit(rule, s, RAISE, Severity.NOTICE, st.raised_at[s], setpoint=st.score[s].astype(np.float64))
