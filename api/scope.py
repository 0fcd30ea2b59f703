"""What an API key may see: the whole province, a city or county (by GB/T 2260 code), or one
enterprise. Every scoped query adds one of these predicates in SQL, never filters afterwards.

The predicates take an argument list and append their parameters to it, so they compose with the
caller's own ``$n`` placeholders::

    args = [sensor_id]
    sql = f"SELECT … FROM sensors s WHERE s.id = $1 AND {scope.enterprise_sql('s.enterprise', args)}"
"""

from __future__ import annotations

import dataclasses
import re

from domain.topics import is_valid_id

KINDS = ("province", "city", "county", "enterprise")
_REGION = re.compile(r"^[0-9]{6}$")


class ScopeError(ValueError):
    """The scope text is not ``province``, ``city:CODE``, ``county:CODE`` or ``enterprise:ID``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Scope:
    kind: str  # province | city | county | enterprise
    id: str | None = None  # region code or enterprise id; None for province

    @classmethod
    def parse(cls, text: str) -> Scope:
        kind, _, value = text.strip().partition(":")
        if kind == "province" and not value:
            return cls("province")
        if kind in ("city", "county"):
            if not _REGION.match(value):
                raise ScopeError(f"{kind} scope needs a 6-digit GB/T 2260 code, e.g. {kind}:360100")
            if kind == "city" and not value.endswith("00"):
                raise ScopeError(f"{value} is not a city code (a city's code ends in 00)")
            if kind == "county" and value.endswith("00"):
                raise ScopeError(f"{value} is not a county code")
            return cls(kind, value)
        if kind == "enterprise":
            if not is_valid_id(value):
                raise ScopeError("enterprise scope needs an enterprise id, e.g. enterprise:E001")
            return cls(kind, value)
        raise ScopeError("scope must be province, city:CODE, county:CODE or enterprise:ID")

    def __str__(self) -> str:
        return self.kind if self.id is None else f"{self.kind}:{self.id}"

    @property
    def province(self) -> bool:
        return self.kind == "province"

    @property
    def regional(self) -> bool:
        return self.kind in ("city", "county")

    def _param(self, args: list) -> str:
        args.append(self.id)
        return f"${len(args)}"

    def region_sql(self, column: str, args: list) -> str:
        """``column`` (a region code) lies within the scope. An enterprise key sees no region."""
        if self.province:
            return "TRUE"
        if self.regional:
            return f"{column} IN (SELECT api_region_subtree({self._param(args)}::text))"
        return "FALSE"

    def enterprise_sql(self, column: str, args: list) -> str:
        """``column`` (an enterprise id) is an enterprise within the scope."""
        if self.province:
            return f"{column} IS NOT NULL"
        if self.regional:
            return (f"{column} IN (SELECT e.id FROM enterprises e "
                    f"WHERE e.region IN (SELECT api_region_subtree({self._param(args)}::text)))")
        return f"{column} = {self._param(args)}::text"

    def sensor_sql(self, column: str, args: list) -> str:
        """``column`` (a dense sensor id) is a sensor of an enterprise within the scope."""
        if self.province:
            return "TRUE"
        return f"{column} IN (SELECT s.id FROM sensors s WHERE {self.enterprise_sql('s.enterprise', args)})"

    def covers_region(self, region: str, chain: tuple[str, ...]) -> bool:
        """In Python, for live feeds: ``chain`` is the region's chain of codes, itself first."""
        if self.province:
            return True
        if self.regional:
            return self.id in chain
        return False
