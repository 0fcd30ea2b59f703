"""The alerts stage's settings: where its policy file is.

Everything else the alerts need (grading, lifecycle, routes, receivers, escalation, outbox,
audit) is in that policy file (:mod:`alerts.policy`). The shell composes this type into its
settings under the same field and environment name as before: ``alerts_config``,
``YUJING_ALERTS_CONFIG``, ``--alerts-config``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from alerts.policy import Policy, load_policy


class AlertsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alerts_config: Path | None = None  # the policy YAML; unset: the packaged alerts/default_policy.yaml

    def load_policy(self) -> Policy:
        """The validated policy (raises :class:`~alerts.policy.PolicyError` naming the key)."""
        return load_policy(self.alerts_config)
