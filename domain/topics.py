"""The MQTT topic contract: ``yj/v1/{enterprise}/{gateway}/{up|status|alerts}``."""

from __future__ import annotations

import dataclasses
import enum
import re

PREFIX = "yj/v1"
UP_FILTER = f"{PREFIX}/+/+/up"
STATUS_FILTER = f"{PREFIX}/+/+/status"

_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class Channel(enum.StrEnum):
    UP = "up"  # JSON batch of readings from a gateway
    STATUS = "status"  # retained online/offline, the gateway's Last Will
    ALERTS = "alerts"  # what yujing publishes back to the gateway


class TopicError(ValueError):
    """The topic is not of the yujing form."""


@dataclasses.dataclass(frozen=True, slots=True)
class Topic:
    enterprise: str
    gateway: str
    channel: Channel

    def __str__(self) -> str:
        return f"{PREFIX}/{self.enterprise}/{self.gateway}/{self.channel.value}"


def is_valid_id(value: str) -> bool:
    """Enterprise, gateway and sensor ids: 1-64 characters of letters, digits, ``_ . -``."""
    return bool(_ID.match(value))


def parse_topic(topic: str) -> Topic:
    """Parse a topic; raises :class:`TopicError` with a sentence saying what is wrong."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError(f"topic {topic[:200]!r} is not of the form {PREFIX}/{{enterprise}}/{{gateway}}/{{channel}}")
    _, _, enterprise, gateway, channel = parts
    if not is_valid_id(enterprise) or not is_valid_id(gateway):
        raise TopicError(f"topic {topic[:200]!r} has an invalid enterprise or gateway id")
    try:
        return Topic(enterprise, gateway, Channel(channel))
    except ValueError:
        raise TopicError(f"topic {topic[:200]!r} has unknown channel {channel[:40]!r}") from None


def up_topic(enterprise: str, gateway: str) -> str:
    return str(Topic(enterprise, gateway, Channel.UP))


def status_topic(enterprise: str, gateway: str) -> str:
    return str(Topic(enterprise, gateway, Channel.STATUS))


def alerts_topic(enterprise: str, gateway: str) -> str:
    return str(Topic(enterprise, gateway, Channel.ALERTS))
