"""Gateway MQTT credentials: issued or rotated (the password shown once), revoked, and listed for
the broker's password and ACL files.

A gateway logs in as ``{enterprise}.{gateway}`` (the broker also makes that its client id); its
monitoring login ``{enterprise}.{gateway}.monitor`` may only read the gateway's alerts and errors
topics, and comes and goes with the gateway's own (issued, rotated, revoked together). Only
the password's Mosquitto hash is stored: ``$7${iterations}${salt}${hash}``, PBKDF2-HMAC-SHA512
over a 12-byte random salt, base64 — the format ``mosquitto_passwd`` writes in Mosquitto 2.0.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets

import asyncpg

from domain.errors import FixConfiguration

MOSQUITTO_ITERATIONS = 101  # what Mosquitto 2.0's mosquitto_passwd uses
SALT_BYTES = 12
PASSWORD_BYTES = 24  # 192 random bits, 32 URL-safe characters


class CredentialError(FixConfiguration):
    """The gateway is unknown or inactive, or its credentials cannot be issued as asked."""


@dataclasses.dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """What to hand to the gateway's installer; ``password`` is never stored or shown again."""

    username: str
    password: str
    rotated: bool  # replaced an earlier password
    monitor_username: str  # the read-only monitoring login
    monitor_password: str


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerLogin:
    """One gateway allowed on the authenticated listener."""

    enterprise: str
    gateway: str
    username: str
    password_hash: str
    monitor_password_hash: str | None = None  # None: issued before monitoring logins existed

    @property
    def monitor_username(self) -> str:
        return monitor_username(self.username)


def mqtt_username(enterprise: str, gateway: str) -> str:
    return f"{enterprise}.{gateway}"


def monitor_username(username: str) -> str:
    """The read-only monitoring login that goes with a gateway's login."""
    return f"{username}.monitor"


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """The Mosquitto 2.0 password-file hash of ``password``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (as the broker checks it)."""
    try:
        _, kind, iterations, salt, digest = password_hash.split("$")
        if kind != "7":
            return False
        expected = base64.b64decode(digest, validate=True)
        salt_bytes = base64.b64decode(salt, validate=True)
        actual = hashlib.pbkdf2_hmac("sha512", password.encode(), salt_bytes, int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


async def _gateway(conn: asyncpg.Connection, enterprise: str, gateway: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        """SELECT g.id, g.active AND e.active AS active, c.gateway IS NOT NULL AS has_credentials,
                  c.revoked_at IS NOT NULL AS revoked
           FROM gateways g JOIN enterprises e ON e.id = g.enterprise
           LEFT JOIN gateway_credentials c ON c.gateway = g.id
           WHERE g.enterprise = $1 AND g.code = $2""",
        enterprise, gateway,
    )
    if row is None:
        raise CredentialError(f"gateway {enterprise}/{gateway} is not in the registry")
    return row


async def issue_credentials(conn: asyncpg.Connection, enterprise: str, gateway: str, *,
                            rotate: bool = False) -> IssuedCredentials:
    """A new password for the gateway. A gateway that already has a live password needs
    ``rotate=True`` (the old one stops working when the broker files are next written)."""
    async with conn.transaction():
        row = await _gateway(conn, enterprise, gateway)
        if not row["active"]:
            raise CredentialError(f"gateway {enterprise}/{gateway} (or its enterprise) is deactivated")
        if row["has_credentials"] and not row["revoked"] and not rotate:
            raise CredentialError(
                f"gateway {enterprise}/{gateway} already has credentials; rotate them to get a new password"
            )
        username = mqtt_username(enterprise, gateway)
        password, monitor_password = new_password(), new_password()
        # Ids may contain '.': E1/"G1.monitor" spells the monitoring login of E1/G1. Refuse either.
        await conn.execute("LOCK TABLE gateway_credentials IN SHARE ROW EXCLUSIVE MODE")
        clash = await conn.fetchval(
            "SELECT username FROM gateway_credentials"
            " WHERE gateway <> $1 AND (username = $2 OR username || '.monitor' = $3)",
            row["id"], monitor_username(username), username)
        if clash is not None:
            raise CredentialError(f"login {username} (or its monitoring login) would clash with {clash}'s;"
                                  " rename one of the gateways")
        try:
            await conn.execute(
                """INSERT INTO gateway_credentials (gateway, username, password_hash, monitor_password_hash)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (gateway) DO UPDATE
                   SET password_hash = EXCLUDED.password_hash, monitor_password_hash = EXCLUDED.monitor_password_hash,
                       rotated_at = now(), revoked_at = NULL""",
                row["id"], username, hash_password(password), hash_password(monitor_password),
            )
        except asyncpg.UniqueViolationError as exc:
            raise CredentialError(
                f"username {username} is already taken by another gateway (enterprise and gateway ids "
                "that contain '.' can spell the same name); rename one of the gateways"
            ) from exc
    return IssuedCredentials(username, password, rotated=bool(row["has_credentials"]),
                             monitor_username=monitor_username(username), monitor_password=monitor_password)


async def revoke_credentials(conn: asyncpg.Connection, enterprise: str, gateway: str) -> bool:
    """Revoke the gateway's password; False if it had none (or it was already revoked)."""
    row = await _gateway(conn, enterprise, gateway)
    return await conn.fetchval(
        "UPDATE gateway_credentials SET revoked_at = now() WHERE gateway = $1 AND revoked_at IS NULL RETURNING true",
        row["id"],
    ) is not None


async def broker_logins(conn: asyncpg.Connection) -> list[BrokerLogin]:
    """Every gateway allowed to log in: live credentials, active gateway, active enterprise."""
    rows = await conn.fetch(
        """SELECT g.enterprise, g.code, c.username, c.password_hash, c.monitor_password_hash
           FROM gateway_credentials c
           JOIN gateways g ON g.id = c.gateway
           JOIN enterprises e ON e.id = g.enterprise
           WHERE c.revoked_at IS NULL AND g.active AND e.active
           ORDER BY c.username"""
    )
    return [BrokerLogin(r["enterprise"], r["code"], r["username"], r["password_hash"], r["monitor_password_hash"])
            for r in rows]


async def broker_auth_version(conn: asyncpg.Connection) -> int:
    """Moves whenever :func:`broker_logins` may have changed."""
    return await conn.fetchval("SELECT version FROM broker_auth_version")
