"""No data, with gateway folding.

A sensor is stale when nothing has arrived from it for ``silence`` (nodata_factor × expected
interval, at least nodata_min_silence_s), measured from its last reading or from its gateway's
return, whichever is later. A gateway is down when its status is ``offline`` (Last Will) or when
none of its sensors has sent anything for gateway_factor × its interval. A down gateway raises one
``gateway_offline`` finding and no ``nodata`` findings are raised for its sensors (findings raised
before it went down stay until data returns). A sensor's silence is judged after its gateway's:
a sensor of a registered gateway is stale only once the gateway has been heard (a reading of
another sensor, an ``online`` status) after the sensor's own deadline passed. So a gateway that
falls silent — with its Last Will, after a clean disconnect, or with its cable cut — gives one
``gateway_offline`` and no ``nodata`` storm before it, whatever the two deadlines are; a sensor
that stops alone is raised at the first sign of life of its gateway after its deadline (one
gateway interval late at most); the only sensor of a gateway that stops is, seen from here,
its gateway falling silent, and gives ``gateway_offline``. Sensors without a registered gateway
are judged alone. Any reading clears its sensor's ``nodata`` and its
gateway's ``gateway_offline`` at once. Silence is judged by arrival time (``received_us``, else
``ts_us``) against the ``now_us`` passed to :meth:`Liveness.tick`; time is never read here.
Cost: one max per reading in ``update``; O(sensors + gateways) array work per ``tick``.
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.findings import CLEAR, RAISE, Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import Columns
from domain.severity import Severity, SubjectKind


class Liveness:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.cfg = Columns({"silence_us": (np.int64, 0, 1), "gateway": (np.int32, 0, 1), "active": (np.bool_, False, 1)})
        self.st = Columns({"last_seen": (np.int64, 0, 1), "on": (np.bool_, False, 1), "raised_at": (np.int64, NO_TS, 1)})
        self.gcfg = Columns({"silence_us": (np.int64, 0, 1), "registered": (np.bool_, False, 1)})
        self.gst = Columns(
            {
                "online": (np.bool_, True, 1),
                "last_seen": (np.int64, 0, 1),
                "up_since": (np.int64, 0, 1),
                "on": (np.bool_, False, 1),
                "raised_at": (np.int64, NO_TS, 1),
            }
        )

    def grow(self, n: int, n_gateways: int) -> None:
        self.cfg.grow(n)
        self.st.grow(n)
        self.gcfg.grow(n_gateways)
        self.gst.grow(n_gateways)

    def step(self, rd: Round, em: Emitter) -> None:
        s = rd.s
        self.st.last_seen[s] = np.maximum(self.st.last_seen[s], rd.seen)
        was = self.st.on[s]
        if was.any():
            self.st.on[s] = False
            i = np.flatnonzero(was)
            em.emit(rules.NODATA, s[i], CLEAR, Severity.NOTICE, rd.t[i], rd.x[i])

    def batch_seen(self, sensors: np.ndarray, seen: np.ndarray, em: Emitter) -> None:
        """Per batch: gateways of the batch's sensors are alive (order-free maximum)."""
        g = self.cfg.gateway[sensors]
        gst = self.gst
        np.maximum.at(gst.last_seen, g, seen)
        down = gst.on[g] | ~gst.online[g]
        if down.any():
            gi, first = np.unique(g[down], return_index=True)
            when = seen[down][first]
            back = gst.on[gi]
            gst.online[gi] = True
            gst.up_since[gi] = np.maximum(gst.up_since[gi], when)
            gst.on[gi] = False
            em.emit(rules.GATEWAY_OFFLINE, gi[back], CLEAR, Severity.WARNING, when[back],
                    subject_kind=SubjectKind.GATEWAY)

    def status(self, gateway_ids: np.ndarray, online: np.ndarray, ts_us: np.ndarray, em: Emitter) -> None:
        """Gateway status messages, applied in time order (they are few: a Python loop)."""
        gst = self.gst
        for k in np.argsort(ts_us, kind="stable"):
            g, on, t = int(gateway_ids[k]), bool(online[k]), int(ts_us[k])
            if g <= 0 or g >= gst.size or not self.gcfg.registered[g]:
                continue
            if on:
                if not gst.online[g]:
                    gst.up_since[g] = max(int(gst.up_since[g]), t)
                gst.online[g] = True
                gst.last_seen[g] = max(int(gst.last_seen[g]), t)
                if gst.on[g]:
                    gst.on[g] = False
                    gst.up_since[g] = max(int(gst.up_since[g]), t)
                    em.emit(rules.GATEWAY_OFFLINE, np.array([g]), CLEAR, Severity.WARNING, t,
                            subject_kind=SubjectKind.GATEWAY)
            else:
                gst.online[g] = False
                if not gst.on[g]:
                    gst.on[g] = True
                    gst.raised_at[g] = t
                    em.emit(rules.GATEWAY_OFFLINE, np.array([g]), RAISE, Severity.WARNING, t,
                            subject_kind=SubjectKind.GATEWAY)

    def tick(self, now_us: int, em: Emitter) -> None:
        gst, gcfg, st, cfg = self.gst, self.gcfg, self.st, self.cfg
        now = np.int64(now_us)
        never = gcfg.registered & (gst.last_seen == 0)
        gst.last_seen[never] = now  # watching starts now
        silent = (now - gst.last_seen) > gcfg.silence_us
        down = gcfg.registered & (~gst.online | silent)
        rise = down & ~gst.on
        back = ~down & gst.on
        if rise.any():
            g = np.flatnonzero(rise)
            gst.on[g] = True
            gst.raised_at[g] = now
            em.emit(rules.GATEWAY_OFFLINE, g, RAISE, Severity.WARNING, now,
                    setpoint=gcfg.silence_us[g] * 1e-6, subject_kind=SubjectKind.GATEWAY)
        if back.any():
            g = np.flatnonzero(back)
            gst.on[g] = False
            gst.up_since[g] = now
            em.emit(rules.GATEWAY_OFFLINE, g, CLEAR, Severity.WARNING, now, subject_kind=SubjectKind.GATEWAY)
        if not self.enabled:
            return
        act = cfg.active
        st.last_seen[act & (st.last_seen == 0)] = now
        gw = cfg.gateway
        ref = np.maximum(st.last_seen, gst.up_since[gw])
        overdue = ref + cfg.silence_us
        # Judged after the gateway: a sensor of a registered gateway is silent on its own only
        # once the gateway has been heard after the sensor became overdue. Until then its silence
        # may be the gateway's, which is decided by the gateway's own (longer) deadline or its Will.
        judged = ~gcfg.registered[gw] | (gst.last_seen[gw] > overdue)
        stale = act & (now > overdue) & judged & ~down[gw] & ~st.on
        if stale.any():
            s = np.flatnonzero(stale)
            st.on[s] = True
            st.raised_at[s] = now
            em.emit(rules.NODATA, s, RAISE, Severity.NOTICE, now, setpoint=cfg.silence_us[s] * 1e-6)

    def active(self, em: Emitter) -> None:
        s = np.flatnonzero(self.st.on)
        em.emit(rules.NODATA, s, RAISE, Severity.NOTICE, self.st.raised_at[s])
        g = np.flatnonzero(self.gst.on)
        em.emit(rules.GATEWAY_OFFLINE, g, RAISE, Severity.WARNING, self.gst.raised_at[g],
                subject_kind=SubjectKind.GATEWAY)
