"""The alerts policy: grading, lifecycle, routing, receivers, inhibition, maintenance, escalation.

One YAML file (``--alerts-config`` / ``YUJING_ALERTS_CONFIG``; the packaged
``alerts/default_policy.yaml`` when none is given) is validated when loaded and turned into frozen
runtime objects by :func:`from_config`; runtime code never sees raw YAML. A bad file raises
:class:`PolicyError` (a :class:`~domain.errors.FixConfiguration`) naming the key. String values may
say ``${NAME}`` to take a secret from the environment (a missing variable is an error).

- :mod:`.model`: the frozen runtime values (what the rest of ``alerts`` reads), re-exported here;
- :mod:`.schema`: the YAML schema (pydantic models), read only by the loader;
- :mod:`.loader`: :func:`load_policy` and :func:`from_config`.
"""

from alerts.policy.loader import from_config, load_policy
from alerts.policy.model import (
    DEFAULT_ANCHOR_DIR,
    DEFAULT_POLICY,
    Channel,
    DingTalkChannel,
    EmailChannel,
    Escalation,
    EscalationStep,
    Flapping,
    Grading,
    GradingRule,
    InhibitRule,
    Lifecycle,
    Maintenance,
    MqttChannel,
    Outbox,
    Policy,
    PolicyError,
    Receiver,
    Route,
    Text,
    Upgrade,
    WebhookChannel,
    WeComChannel,
    Window,
    parse_duration,
)

__all__ = [
    "DEFAULT_ANCHOR_DIR", "DEFAULT_POLICY", "Channel", "DingTalkChannel", "EmailChannel", "Escalation",
    "EscalationStep", "Flapping", "Grading", "GradingRule", "InhibitRule", "Lifecycle", "Maintenance",
    "MqttChannel", "Outbox", "Policy", "PolicyError", "Receiver", "Route", "Text", "Upgrade", "WebhookChannel",
    "WeComChannel", "Window", "from_config", "load_policy", "parse_duration",
]
