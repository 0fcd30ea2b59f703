"""The registry's writes as a key may make them: below the province administrator,
every region and enterprise named must already exist within the key's scope, and every other
entry's enterprise too, checked before anything else so that a 404 tells nothing about what
exists outside the scope; regions and enterprises are created, re-parented and moved by the
administrator only (403). After the import every entry must still lie in the scope."""

from api.keys import ApiKey
from api.scope import Scope
from store.registry_records import import_registry, visible_ids
from store.registry_records.scoped import enterprise_places, region_parents
from store.registry_file import RegistryFile, RegistryFileError, region_level


def _in_scope(scope: Scope, section: str):
    """The scope's condition for a section's keys: region codes or enterprise ids."""
    return scope.region_sql if section == "regions" else scope.enterprise_sql


class OutOfScope(LookupError):
    """An entry lies outside the key's scope (answered 404, as if it did not exist)."""


def entry_keys(reg: RegistryFile) -> dict[str, list]:
    return {
        "regions": [r.code for r in reg.regions],
        "enterprises": [e.id for e in reg.enterprises],
        **{s: [(e.enterprise, e.id) for e in getattr(reg, s)] for s in ("zones", "gateways", "hazard_sources")},
        "sensors": [(s.enterprise, s.id) for s in reg.sensors],
    }


async def _outside(conn, scope: Scope, reg: RegistryFile) -> str | None:
    """After the import: the first entry outside the scope (None if all inside)."""
    for section, keys in entry_keys(reg).items():
        if not keys:
            continue
        if section in ("regions", "enterprises"):
            visible = await visible_ids(conn, _in_scope(scope, section), section, keys)
            bad = next((k for k in keys if k not in visible), None)
        else:
            enterprises = sorted({e for e, _ in keys if e is not None})
            visible = await visible_ids(conn, scope.enterprise_sql, "enterprises", enterprises)
            bad = next((e for e, _ in keys if e not in visible), None)
            section = f"{section} of enterprise"
        if bad is not None:
            return f"{section} {bad}"
    return None


_LEVEL_RANK = {"province": 0, "city": 1, "county": 2}


def _check_region_parents(reg: RegistryFile) -> None:
    """A region's parent must be of a higher level (province > city > county), so the tree can
    have no cycle (the recursive views over it would never end)."""
    for i, r in enumerate(reg.regions):
        if r.parent is not None and _LEVEL_RANK[region_level(r.parent)] >= _LEVEL_RANK[r.level]:
            raise RegistryFileError(f"regions[{i}] ({r.code}): parent {r.parent} is not of a higher level "
                                    f"than {r.level}")


class Forbidden(PermissionError):
    """Inside the key's scope, but reserved to the province administrator (answered 403)."""


async def import_scoped(conn, key: ApiKey, reg: RegistryFile):
    """Import inside the caller's transaction. A key that is not the province administrator may
    only change regions and enterprises that exist within its scope, without moving them (a
    region's parent, an enterprise's region: both define other keys' scopes), and entries of
    enterprises within its scope; anything not visible to it is 404 before any other check, so
    its answers tell nothing about what exists outside its scope. After the import every entry
    must still be within the scope."""
    _check_region_parents(reg)
    if not key.admin:
        reg = await _checked_for(conn, key, reg)
    report = await import_registry(conn, reg)
    bad = await _outside(conn, key.scope, reg)
    if bad is not None:
        raise OutOfScope(f"{bad} not found in this key's scope")
    return report


async def _checked_for(conn, key: ApiKey, reg: RegistryFile) -> RegistryFile:
    """``reg`` as a key below the administrator may import it (region parents it left out are
    kept as they are); raises :class:`OutOfScope` or :class:`Forbidden`."""
    scope = key.scope
    codes = [r.code for r in reg.regions]
    ids = [e.id for e in reg.enterprises]
    owners = sorted({e.enterprise for s in ("zones", "gateways", "sensors", "hazard_sources")
                     for e in getattr(reg, s) if e.enterprise is not None})
    if not scope.province and any(s.enterprise is None for s in reg.sensors):
        raise RegistryFileError("sensors: give each entry's enterprise (keys scoped below the province must)")
    for section, keys in (("regions", codes), ("enterprises", ids), ("enterprises", owners)):
        visible = await visible_ids(conn, _in_scope(scope, section), section, keys)
        missing = next((k for k in keys if k not in visible), None)
        if missing is None:
            continue
        if scope.province and section == "regions" or scope.province and keys is ids:
            raise Forbidden(f"only a province administrator creates {section} ({missing} does not exist)")
        if scope.province:
            continue  # a child of an enterprise that does not exist: the import names it (422)
        raise OutOfScope(f"{section} {missing} not found in this key's scope")
    parents = await region_parents(conn, codes)
    regions = []
    for r in reg.regions:
        if r.parent is not None and r.parent != parents[r.code]:
            raise Forbidden(f"only a province administrator changes a region's parent ({r.code})")
        regions.append(r.model_copy(update={"parent": parents[r.code]}))
    current = await enterprise_places(conn, ids)
    for e in reg.enterprises:
        if e.region != current[e.id]["region"]:
            raise Forbidden(f"only a province administrator moves an enterprise to another region ({e.id})")
        if scope.kind == "enterprise" and e.risk_colour != current[e.id]["risk_colour"]:
            raise Forbidden("an enterprise's key may not change its assessed risk colour (静态评估 is the regulator's)")
    return reg.model_copy(update={"regions": regions})
