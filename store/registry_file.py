"""Parsing and validation of registry YAML files (docs/registry.md), before any database work.

``parse_registry_file`` is pure: it returns validated entries or raises :class:`RegistryFileError`
naming the wrong entry. Cross-references to rows already in the database are checked by
``store.registry.import_registry`` inside its transaction.
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


class RegistryFileError(FixConfiguration):
    """The file is invalid; nothing was changed. The message names the entry."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class RegionEntry(_Entry):
    code: RegionCode
    name: Annotated[str, Field(min_length=1)]
    parent: RegionCode | None = None

    @property
    def level(self) -> str:
        return region_level(self.code)


class Contact(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, coerce_numbers_to_str=True)
    role: str
    name: str | None = None
    phone: str | None = None
    webhook: str | None = None
    email: str | None = None


class EnterpriseEntry(_Entry):
    id: Code
    name: Annotated[str, Field(min_length=1)]
    region: RegionCode
    industry: Industry
    risk_colour: Literal["red", "orange", "yellow", "blue"] | None = None
    risk_assessed_on: dt.date | None = None
    contacts: list[Contact] = []
    active: bool = True


class ZoneEntry(_Entry):
    id: Code
    enterprise: Code
    name: str | None = None
    kind: str | None = None
    adjacent: list[Code] = []
    active: bool = True


class GatewayEntry(_Entry):
    id: Code
    enterprise: Code
    name: str | None = None
    zone: Code | None = None
    expected_interval_s: Annotated[float, Field(gt=0)] = 60.0
    active: bool = True


class SensorEntry(_Entry):
    id: Code
    gateway: Code
    enterprise: Code | None = None
    kind: str
    unit: str | None = None
    location: str = ""
    location_class: str = ""
    zone: Code | None = None
    expected_interval_s: Annotated[float, Field(gt=0)] | None = None
    range: tuple[float, float] | None = None
    setpoints: dict[str, float] = {}
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
    name: Annotated[str, Field(min_length=1)]
    level: Annotated[int, Field(ge=1, le=4)]  # 一级 … 四级
    sensors: list[Code] = []
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


def parse_registry_file(text: str) -> RegistryFile:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryFileError(f"not valid YAML: {exc}") from None
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
