"""Rolling median / MAD score (enabled per kind: ``window: true``), measured separately.

Each enabled sensor owns a float32 ring buffer of the last W unflagged statistical readings.
Once full, a reading is scored against the window as it stands before the reading:

    med = median(window);  MAD = median(|window − med|)     (middle element for odd W, mean of
                                                              the middle pair for even W; float64)
    z = |x − med| / max(1.4826 MAD, floor);  score = 1 − exp(−z / z_ref)

``window`` raises at score ≥ window_threshold (subject to the anomaly refractory period) and holds
while score ≥ anomaly_clear; flagged readings never enter the window. Median and MAD come from
``np.sort`` along the rows touched in the round (two sorts of W float32 per reading).
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.findings import Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns, decide_scored, emit_active_scored

MAD_TO_SIGMA = 1.4826


class Window(ColumnDetector):
    def __init__(self, size: int = 64) -> None:
        self.W = size
        self.cfg = Columns(
            {
                "enabled": (np.bool_, False, 1),
                "th": (np.float64, 0.75, 1),
                "clr": (np.float64, 0.5, 1),
                "zref": (np.float64, 4.0, 1),
                "floor": (np.float64, 1e-9, 1),
                "refr_us": (np.int64, 0, 1),
            }
        )
        self.st = Columns(
            {
                "row": (np.int32, -1, 1),
                "on": (np.bool_, False, 1),
                "last_clear": (np.int64, NO_TS, 1),
                "raised_at": (np.int64, NO_TS, 1),
                "score": (np.float32, 0.0, 1),
            }
        )
        self.buf = np.zeros((0, size), dtype=np.float32)
        self.pos = np.zeros(0, dtype=np.int16)
        self.cnt = np.zeros(0, dtype=np.int16)

    @property
    def rows(self) -> int:
        return int(self.buf.shape[0])

    @property
    def buffer_nbytes(self) -> int:
        return self.buf.nbytes + self.pos.nbytes + self.cnt.nbytes

    def configure_kind(self, m: np.ndarray, p, enabled: bool) -> None:
        n = m.shape[0]
        self.cfg.enabled[:n][m] = enabled
        self.cfg.th[:n][m] = p.window_threshold
        self.cfg.clr[:n][m] = p.anomaly_clear
        self.cfg.zref[:n][m] = p.anomaly_z_ref
        self.cfg.refr_us[:n][m] = int(p.anomaly_refractory_s * 1e6)
        if enabled:
            self.W = p.window_size  # one window size for all windowed kinds: the last one wins

    def allocate(self, n: int) -> None:
        """Give every enabled sensor a ring-buffer row, keeping the windows of those that had one."""
        want = np.flatnonzero(self.cfg.enabled[:n])
        old_row = self.st.row.copy()
        buf = np.zeros((want.shape[0], self.W), dtype=np.float32)
        pos = np.zeros(want.shape[0], dtype=np.int16)
        cnt = np.zeros(want.shape[0], dtype=np.int16)
        keep = old_row[want] >= 0
        if keep.any() and self.buf.shape[1] == self.W:
            src = old_row[want[keep]]
            buf[keep], pos[keep], cnt[keep] = self.buf[src], self.pos[src], self.cnt[src]
        self.st.row[:] = -1
        self.st.row[want] = np.arange(want.shape[0], dtype=np.int32)
        self.buf, self.pos, self.cnt = buf, pos, cnt

    def step(self, rd: Round, em: Emitter, stat: np.ndarray) -> None:
        rw_all = self.st.row[rd.s]
        m = stat & (rw_all >= 0)
        if not m.any():
            return
        i = np.flatnonzero(m)
        s, rw, x, t = rd.s[i], rw_all[i], rd.x[i], rd.t[i]
        W = self.W
        cfg, st = self.cfg, self.st
        full = self.cnt[rw] >= W
        score = np.zeros(s.shape[0])
        if full.any():
            f = np.flatnonzero(full)
            B = self.buf[rw[f]]
            lo, hi = (W - 1) // 2, W // 2  # the middle element (odd W) or the middle pair (even W)
            srt = np.sort(B, axis=1)
            med = 0.5 * (srt[:, lo].astype(np.float64) + srt[:, hi])
            dev = np.sort(np.abs(B - med[:, None]), axis=1)
            mad = 0.5 * (dev[:, lo] + dev[:, hi])
            z = np.abs(x[f] - med) / np.maximum(MAD_TO_SIGMA * mad, cfg.floor[s[f]])
            score[f] = -np.expm1(-z / cfg.zref[s[f]])
        flagged = full & (score >= cfg.th[s])
        ins = ~flagged
        ri = rw[ins]
        self.buf[ri, self.pos[ri]] = x[ins]
        self.pos[ri] = (self.pos[ri] + 1) % W
        self.cnt[ri] = np.minimum(self.cnt[ri] + 1, W)
        decide_scored(rules.WINDOW, cfg, st, s, t, x, score, flagged, full, em)

    def active(self, em: Emitter) -> None:
        emit_active_scored(rules.WINDOW, self.st, em)
