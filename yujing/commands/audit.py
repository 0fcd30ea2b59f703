"""``yujing audit verify`` and ``yujing audit head``: the alert audit journal from the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

DatabaseUrl = Annotated[Optional[str], typer.Option("--database-url", help="default: YUJING_DATABASE_URL")]


def _database_url(database_url: str | None) -> str:
    if database_url is not None:
        return database_url
    from yujing.settings import load_settings

    return load_settings().database_url


def _anchor_dir(anchor_dir: str | None) -> Path | None:
    """``--anchor-dir`` (resolved against this directory, since the user typed it) or the alerts
    policy's ``audit.anchor_dir`` (absolute, the directory the service writes)."""
    if anchor_dir is not None:
        return Path(anchor_dir).resolve()
    from alerts.policy import load_policy
    from yujing.settings import load_settings

    return load_policy(load_settings().alerts_config).anchor_dir


async def verify_async(database_url: str, anchor_dir: Path | None, notarised=()):
    import asyncpg

    from alerts.journaled import verify_alerts_journal

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return await verify_alerts_journal(conn, anchor_dir, notarised=notarised)
    finally:
        await conn.close()


def verify(
    database_url: DatabaseUrl = None,
    anchor_dir: Annotated[
        Optional[str], typer.Option("--anchor-dir", help="default: the alerts policy's audit.anchor_dir")] = None,
    head: Annotated[Optional[list[str]], typer.Option("--head", help="SEQ:HASH kept by a notary (repeatable)")] = None,
) -> None:
    """Verify the audit journal: edited, deleted, reordered or rewritten entries, a cut-off tail, a
    missing anchor, and alert rows that differ from their journal. Exits 1 when not intact."""
    from journal import parse_notarised

    try:
        notarised = [parse_notarised(h) for h in head or ()]
    except ValueError as exc:
        typer.echo(f"yujing: --head: {exc}", err=True)
        raise typer.Exit(code=2) from None
    url = _database_url(database_url)
    report = asyncio.run(verify_async(url, _anchor_dir(anchor_dir), notarised))
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(code=1)


async def head_async(database_url: str) -> dict:
    import asyncpg

    from journal import read_head

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return (await read_head(conn)).as_dict()
    finally:
        await conn.close()


def head(database_url: DatabaseUrl = None) -> None:
    """Print the journal's head (database, seq, hash, time) as one JSON line, for an external
    notary; give it back to `yujing audit verify --head SEQ:HASH`."""
    typer.echo(json.dumps(asyncio.run(head_async(_database_url(database_url))), ensure_ascii=False))
