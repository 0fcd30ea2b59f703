"""Parsing and validation of registry YAML files (docs/registry.md), before any database work.

``parse_registry_file`` is pure: it returns validated entries or raises :class:`RegistryFileError`
naming the wrong entry. Cross-references to rows already in the database are checked by
``store.registry_records.import_registry`` inside its transaction.

Hostile files (issue 12): YAML aliases are refused (an alias bomb of a few hundred bytes expands
to gigabytes; without aliases a document has at most as many nodes as it has bytes), no entry
takes fields it does not know, and every string and list has a bound.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.catalog import get_kind
from domain.errors import FixConfiguration
from domain.industries import Industry
from domain.topics import is_valid_id

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
RegionCode = Annotated[str, Field(pattern=r"^[0-9]{6}$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Short = Annotated[str, Field(max_length=64)]
Url = Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s/?#@]+(?:[/?#]\S*)?$")]
MAX_CONTACTS = 20
MAX_LINKS = 10_000  # adjacent zones, a hazard source's sensors


class RegistryFileError(FixConfiguration):
    """The file is invalid; nothing was changed. The message names the entry."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class RegionEntry(_Entry):
    code: RegionCode
    name: Name
    parent: RegionCode | None = None

    @property
    def level(self) -> str:
        return region_level(self.code)


class Contact(_Entry):
    """An escalation contact. ``webhook`` (a DingTalk or WeCom robot, or any https endpoint) and
    ``secret`` (DingTalk's signing secret) are stored encrypted and never shown again
    (``store.secretbox``); escalation sends only to hosts a province administrator approved."""

    role: Annotated[str, Field(min_length=1, max_length=32)]
    name: Annotated[str, Field(max_length=100)] | None = None
    phone: Annotated[str, Field(max_length=32)] | None = None
    webhook: Url | None = None
    secret: Annotated[str, Field(max_length=256)] | None = None
    email: Annotated[str, Field(max_length=254)] | None = None


class EnterpriseEntry(_Entry):
    id: Code
    name: Name
    region: RegionCode
    industry: Industry
    risk_colour: Literal["red", "orange", "yellow", "blue"] | None = None
    risk_assessed_on: dt.date | None = None
    contacts: Annotated[list[Contact], Field(max_length=MAX_CONTACTS)] = []
    active: bool = True


class ZoneEntry(_Entry):
    id: Code
    enterprise: Code
    name: Name | None = None
    kind: Short | None = None
    adjacent: Annotated[list[Code], Field(max_length=MAX_LINKS)] = []
    active: bool = True


class GatewayEntry(_Entry):
    id: Code
    enterprise: Code
    name: Name | None = None
    zone: Code | None = None
    expected_interval_s: Annotated[float, Field(gt=0)] = 60.0
    active: bool = True


class SensorEntry(_Entry):
    id: Code
    gateway: Code
    enterprise: Code | None = None
    kind: Short
    unit: Annotated[str, Field(max_length=32)] | None = None
    location: Annotated[str, Field(max_length=200)] = ""
    location_class: Annotated[str, Field(max_length=64)] = ""
    zone: Code | None = None
    expected_interval_s: Annotated[float, Field(gt=0)] | None = None
    range: tuple[float, float] | None = None
    setpoints: Annotated[dict[Short, float], Field(max_length=16)] = {}
    equipment: Code | None = None  # the piece of equipment it belongs to (its channels are judged together)
    active: bool = True

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        get_kind(v)  # raises with the list of known kinds
        return v

    @field_validator("range")
    @classmethod
    def _ordered_range(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError("range must be [min, max] with min < max")
        return v


class HazardSourceEntry(_Entry):
    id: Code
    enterprise: Code
    name: Name
    level: Annotated[int, Field(ge=1, le=4)]  # 一级 … 四级
    sensors: Annotated[list[Code], Field(max_length=MAX_LINKS)] = []
    active: bool = True


class RegistryFile(_Entry):
    regions: list[RegionEntry] = []
    enterprises: list[EnterpriseEntry] = []
    zones: list[ZoneEntry] = []
    gateways: list[GatewayEntry] = []
    sensors: list[SensorEntry] = []
    hazard_sources: list[HazardSourceEntry] = []


def region_level(code: str) -> str:
    if code.endswith("0000"):
        return "province"
    if code.endswith("00"):
        return "city"
    return "county"


def region_ancestors(code: str) -> list[str]:
    """Codes that may be the parent, nearest first: county → city → province."""
    level = region_level(code)
    if level == "county":
        return [code[:4] + "00", code[:2] + "0000"]
    if level == "city":
        return [code[:2] + "0000"]
    return []


def parse_registry_document(doc: Any) -> RegistryFile:
    if doc is None:
        return RegistryFile()
    if not isinstance(doc, dict):
        raise RegistryFileError("a registry file is a mapping with regions, enterprises, zones, gateways, sensors, hazard_sources")
    try:
        parsed = RegistryFile.model_validate(doc)
    except ValidationError as exc:
        raise RegistryFileError(_describe(exc, doc)) from None
    _check_unique(parsed)
    return parsed


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases (``*name``, and merge keys ``<<: *name`` with them)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted in registry files",
                                              event.start_mark)
        return super().compose_node(parent, index)


def parse_registry_file(text: str) -> RegistryFile:
    try:
        doc = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise RegistryFileError(f"not valid YAML: {str(exc)[:500]}") from None
    return parse_registry_document(doc)


def _describe(exc: ValidationError, doc: dict) -> str:
    lines = []
    for err in exc.errors()[:20]:
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and isinstance(loc[1], int):
            entries = doc.get(loc[0]) or []
            entry = entries[loc[1]] if loc[1] < len(entries) else None
            if isinstance(entry, dict) and "id" in entry or isinstance(entry, dict) and "code" in entry:
                where = f"{loc[0]}[{loc[1]}] ({entry.get('id', entry.get('code'))})" + "".join(f".{p}" for p in loc[2:])
            else:
                where = f"{loc[0]}[{loc[1]}]" + "".join(f".{p}" for p in loc[2:])
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    return "invalid registry file:\n  " + "\n  ".join(lines)


def _check_unique(f: RegistryFile) -> None:
    def dupes(name: str, keys: list) -> None:
        seen = set()
        for i, k in enumerate(keys):
            if k in seen:
                raise RegistryFileError(f"{name}[{i}] ({k if isinstance(k, str) else '/'.join(map(str, k))}): appears twice in the file")
            seen.add(k)

    dupes("regions", [r.code for r in f.regions])
    dupes("enterprises", [e.id for e in f.enterprises])
    dupes("zones", [(z.enterprise, z.id) for z in f.zones])
    dupes("gateways", [(g.enterprise, g.id) for g in f.gateways])
    dupes("hazard_sources", [(h.enterprise, h.id) for h in f.hazard_sources])
    for i, s in enumerate(f.sensors):
        if not is_valid_id(s.id):
            raise RegistryFileError(f"sensors[{i}] ({s.id}): invalid id")
