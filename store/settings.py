"""The store's settings: where the database is, who migrates it, and how long raw data is kept.

Plain pydantic models; the shell (``yujing.settings``) composes them with the other stages' and
reads them from ``YUJING_*`` variables and the TOML file.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

DEFAULT_DATABASE_URL = "postgresql://yujing@127.0.0.1:5432/yujing"  # the service's role (store/roles.sql)
MIGRATION_ROLE = "yujing_owner"  # owns the schema; `yujing migrate` only
MIN_COAL_RETENTION_DAYS = 92  # 煤矿安全规程: keep at least 3 months of monitoring data

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class DatabaseSettings(BaseModel):
    """The database connection (top-level ``database_*`` settings)."""

    database_url: str = DEFAULT_DATABASE_URL
    database_migration_url: str | None = None  # unset: database_url as yujing_owner, no password
    database_timeout_s: PositiveFloat = 10.0

    @field_validator("database_url", "database_migration_url")
    @classmethod
    def _database_url(cls, v: str | None) -> str | None:
        parts = urlsplit(v or "postgresql://h/d")
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise ValueError("must look like postgresql://user@host:port/database")
        return v

    @property
    def migration_url(self) -> str:
        """Where ``yujing migrate`` connects: the schema owner, never the service's role."""
        if self.database_migration_url:
            return self.database_migration_url
        parts = urlsplit(self.database_url)
        return parts._replace(netloc=f"{MIGRATION_ROLE}@{parts.netloc.rsplit('@', 1)[-1]}").geturl()


class RetentionSettings(BaseModel):
    """Raw readings kept per industry, in days (rollups are kept longer)."""

    coal_mine: PositiveInt = 120
    non_coal_mine: PositiveInt = 120
    hazardous_chemicals: PositiveInt = 120
    cold_storage: PositiveInt = 120
    gas_pipeline: PositiveInt = 120
    dead_letters: PositiveInt = 30

    @field_validator("coal_mine")
    @classmethod
    def _coal_floor(cls, v: int) -> int:
        if v < MIN_COAL_RETENTION_DAYS:
            raise ValueError(f"coal-mine rules require at least {MIN_COAL_RETENTION_DAYS} days")
        return v

    def days(self, industry: str) -> int:
        return int(getattr(self, industry))

    @property
    def longest_days(self) -> int:
        return max(self.coal_mine, self.non_coal_mine, self.hazardous_chemicals, self.cold_storage, self.gas_pipeline)
