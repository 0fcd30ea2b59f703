"""Graded alerts and the alert router.

Findings from the detectors become alerts graded in the four warning colours (红橙黄蓝), with a
durable, audited lifecycle in PostgreSQL, and are routed — grouped, muted, inhibited, escalated —
to webhooks, DingTalk and WeCom robots, e-mail, the gateway's MQTT ``alerts`` topic and the live
feed. The public surface is what this module exports (``tests/alerts/test_exports.py`` keeps it):

- wiring: :class:`AlertsService`, :class:`AlertFeed`, :func:`load_policy`, :func:`from_config`;
- the API: :mod:`alerts.transitions` (the only way to change an alert), :mod:`alerts.silences`
  (silence CRUD), :mod:`alerts.places` (colours of places for the 四色图), :mod:`alerts.journaled`
  (the alerts' rows against the journal, ``verify_alerts_journal``; the journal itself is the
  top-level package ``journal``), :mod:`alerts.render` (an alert's names and text as operators read them);
- vocabulary: :class:`Colour`, :class:`State`, :class:`Alert` and the errors.
"""

from alerts import journaled, render, silences, transitions
from alerts.records import places
from alerts.colours import Colour
from alerts.feed import AlertFeed, Subscription
from alerts.lifecycle import Alert, AlertNotFound, State, TransitionError, VersionConflict
from alerts.policy import Policy, PolicyError, from_config, load_policy
from alerts.service import AlertsService
from alerts.silences import SilenceError, SilenceNotFound

__all__ = [
    "Alert",
    "AlertFeed",
    "AlertNotFound",
    "AlertsService",
    "Colour",
    "Policy",
    "PolicyError",
    "SilenceError",
    "SilenceNotFound",
    "State",
    "Subscription",
    "TransitionError",
    "VersionConflict",
    "from_config",
    "journaled",
    "load_policy",
    "places",
    "render",
    "silences",
    "transitions",
]
