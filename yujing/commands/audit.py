"""``yujing audit verify``: check the alert audit journal's hash chain and its anchors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer


async def verify_async(database_url: str, anchor_dir: Path | None):
    import asyncpg

    from alerts.journal import verify as verify_journal

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return await verify_journal(conn, anchor_dir)
    finally:
        await conn.close()


def verify(database_url: str | None = None, anchor_dir: str | None = None) -> None:
    """Verify the audit journal: detects edited, deleted and reordered entries and a cut-off tail.

    The database comes from ``--database-url`` or the settings (``YUJING_DATABASE_URL``); the anchor
    directory from ``--anchor-dir`` or the alerts policy (``audit.anchor_dir``). Exits 1 when the
    journal is not intact.
    """
    if database_url is None or anchor_dir is None:
        from alerts.policy import load_policy
        from yujing.settings import load_settings

        settings = load_settings()
        database_url = database_url or settings.database_url
        if anchor_dir is None:
            policy = load_policy(settings.alerts_config)
            anchor_dir = str(policy.anchor_dir) if policy.anchor_dir else None
    report = asyncio.run(verify_async(database_url, Path(anchor_dir) if anchor_dir else None))
    typer.echo(report.summary())
    if anchor_dir is None:
        typer.echo("no anchor directory configured: a tail cut together with the head row is not detectable")
    if not report.ok:
        raise typer.Exit(code=1)
