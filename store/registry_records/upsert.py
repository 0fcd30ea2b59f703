"""One set-based upsert of registry rows through ``unnest``, counting what it created, updated or left."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import asyncpg


@dataclasses.dataclass
class TableChanges:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


async def upsert_rows(
    conn: asyncpg.Connection,
    table: str,
    key: Sequence[str],
    columns: Sequence[tuple[str, str]],
    rows: list[tuple],
    changes: TableChanges,
    returning: str = "id",
) -> list:
    """Set-based upsert through unnest; counts created/updated/unchanged rows.

    ``columns`` are (name, SQL array type) pairs, key columns included. Returns ``returning`` of
    every row, created, updated or not, in input order.
    """
    if not rows:
        return []
    names = [c for c, _ in columns]
    cols = list(zip(*rows, strict=True))
    unnest = ", ".join(f"${i + 1}::{t}[]" for i, (_, t) in enumerate(columns))
    non_key = [c for c in names if c not in key]
    set_clause = ", ".join(f"{c} = excluded.{c}" for c in non_key) + ", updated_at = now()"
    distinct = " OR ".join(f"{table}.{c} IS DISTINCT FROM excluded.{c}" for c in non_key)
    sql = f"""
        INSERT INTO {table} ({", ".join(names)})
        SELECT * FROM unnest({unnest})
        ON CONFLICT ({", ".join(key)}) DO UPDATE SET {set_clause}
        WHERE {distinct}
        RETURNING {", ".join(key)}, (xmax = 0) AS created"""
    touched = {tuple(r[k] for k in key): r["created"] for r in await conn.fetch(sql, *[list(c) for c in cols])}
    key_index = [names.index(k) for k in key]
    for row in rows:
        state = touched.get(tuple(row[i] for i in key_index))
        if state is None:
            changes.unchanged += 1
        elif state:
            changes.created += 1
        else:
            changes.updated += 1
    key_cols = ", ".join(key)
    found = await conn.fetch(
        f"SELECT {key_cols}, {returning} AS ret FROM {table} WHERE ({key_cols}) IN "
        f"(SELECT * FROM unnest({', '.join(f'${i + 1}::{columns[names.index(k)][1]}[]' for i, k in enumerate(key))}))",
        *[list(cols[names.index(k)]) for k in key],
    )
    by_key = {tuple(r[k] for k in key): r["ret"] for r in found}
    return [by_key[tuple(row[i] for i in key_index)] for row in rows]
