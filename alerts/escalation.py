"""Escalation by time unacknowledged: enterprise safety officer → county → city → province centre.

Each grade has a chain of steps (``after``: time unacknowledged at that grade). A step is due at
``unacked_since + after`` (:func:`alerts.timers.deadlines`); acknowledging stops the chain, a rise in grade restarts it, shelving,
a silence or a maintenance window postpones it. Targets:

- ``enterprise:<role>``: the enterprise's registry contacts with that role (``enterprises.contacts``
  webhook: DingTalk or WeCom robot URLs are recognised by host, anything else is a generic webhook;
  a contact's ``secret`` signs DingTalk);
- ``region:county|city|province``: the monitoring centre receiver of that ancestor of the
  enterprise's region, else of the nearest ancestor above it that has one, else the default
  centre — never the same receiver twice for one alert;
- ``receiver:<name>``: a receiver of the policy.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from urllib.parse import urlsplit

import asyncpg

from alerts.alert import Alert
from alerts.policy import EscalationStep, Policy
from domain.registry import RegistrySnapshot
from store.contact_hosts import escalation_contacts

LEVEL_ZH = {"county": "县级监测中心", "city": "市级监测中心", "province": "省级监测中心"}


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    label: str  # e.g. "region:county → 360102-centre"
    label_zh: str
    receiver: str | None = None  # a policy receiver
    contact: dict | None = None  # {"type", "url" or "url_enc", "url_sha256", "secret" or "secret_enc", "role", "name"}


def contact_type(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    if host.endswith("dingtalk.com"):
        return "dingtalk"
    if host.endswith("qyapi.weixin.qq.com"):
        return "wecom"
    return "webhook"


class Escalator:
    def __init__(self, policy: Policy, registry: Callable[[], RegistrySnapshot]) -> None:
        self.policy = policy
        self.registry = registry

    def chain(self, alert: Alert) -> tuple[EscalationStep, ...]:
        return self.policy.escalation.chains.get(alert.grade, ())

    def centre_for(self, alert: Alert, level: str, registry: RegistrySnapshot) -> str | None:
        chain = list(alert.regions)
        start = next((i for i, c in enumerate(chain)
                      if (r := registry.regions.get(c)) is not None and r.level == level), None)
        if start is None:  # the enterprise sits above this level (e.g. a city enterprise, county step)
            start = 0
        for code in chain[start:]:
            if code in self.policy.escalation.centres:
                return self.policy.escalation.centres[code]
        return self.policy.escalation.default_centre

    def _receivers_of(self, alert: Alert, step: EscalationStep, registry: RegistrySnapshot) -> list[str]:
        if step.target.startswith("receiver:"):
            return [step.target[9:]]
        if step.target.startswith("region:"):
            c = self.centre_for(alert, step.target[7:], registry)
            return [c] if c else []
        return []

    async def targets(self, conn: asyncpg.Connection, alert: Alert, index: int) -> list[Target]:
        chain = self.chain(alert)
        step = chain[index]
        registry = self.registry()
        if step.target.startswith("enterprise:"):
            role = step.target[11:]
            if not alert.enterprise:
                return []
            out = []
            # only contacts on hosts a province administrator approved (no requests to arbitrary hosts)
            for c in await escalation_contacts(conn, alert.enterprise):
                if c.get("role") != role:
                    continue
                url = c["webhook"]
                # what goes into the outbox: the URL (which carries a robot's access token) only in
                # the encrypted form it is stored in, and a digest of it for the idempotency key
                sealed = {"url_enc": c["webhook_enc"]} if c.get("webhook_enc") else {"url": url}
                out.append(Target(
                    label=f"{step.target} {c.get('name') or ''}".strip(),
                    label_zh=f"企业{'安全员' if role == 'safety_officer' else role} {c.get('name') or ''}".strip(),
                    contact={"type": contact_type(url), **sealed, "url_sha256": hashlib.sha256(url.encode()).hexdigest(),
                             "secret": c.get("secret"), "role": role, "name": c.get("name"),
                             "secret_enc": c.get("secret_enc")},
                ))
            return out
        earlier = {r for s in chain[:index] for r in self._receivers_of(alert, s, registry)}
        out = []
        for r in self._receivers_of(alert, step, registry):
            if r in earlier or r not in self.policy.receivers:
                continue
            zh = LEVEL_ZH.get(step.target[7:], r) if step.target.startswith("region:") else r
            out.append(Target(label=f"{step.target} → {r}", label_zh=f"{zh}（{r}）", receiver=r))
        return out
