"""Gateway credentials: the Mosquitto hash, issuing, rotating, revoking, and the rendered files."""

from __future__ import annotations

import shutil
import stat
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.broker_files import BrokerFiles, render_acl_file, render_password_file, write_atomically
from store.gateway_credentials import (
    CredentialError,
    broker_auth_version,
    broker_logins,
    hash_password,
    issue_credentials,
    revoke_credentials,
    verify_password,
)
from store.registry_records import import_registry
from store.registry_file import parse_registry_file

REGISTRY = """
enterprises:
  - {id: E1, name: 一号矿, region: "360100", industry: coal_mine}
  - {id: E2, name: 二号矿, region: "360100", industry: coal_mine}
  - {id: A.B, name: 点号企业, region: "360100", industry: coal_mine}
  - {id: A, name: 另一企业, region: "360100", industry: coal_mine}
gateways:
  - {id: G1, enterprise: E1}
  - {id: G2, enterprise: E1}
  - {id: G1.monitor, enterprise: E1}
  - {id: G1, enterprise: E2}
  - {id: C, enterprise: A.B}
  - {id: B.C, enterprise: A}
"""


def mosquitto_passwd() -> str:
    path = shutil.which("mosquitto_passwd")
    assert path, "mosquitto_passwd not found: install Debian's mosquitto package (make setup)"
    return path


def test_hashes_of_mosquitto_passwd_verify_and_ours_use_its_format(tmp_path):
    f = tmp_path / "passwd"
    subprocess.run([mosquitto_passwd(), "-c", "-b", str(f), "E1.G1", "口令 with spaces"], check=True)
    theirs = f.read_text().strip().split(":", 1)[1]
    assert verify_password("口令 with spaces", theirs)
    assert not verify_password("口令 with space", theirs)
    ours = hash_password("s3cret")
    _, kind, iterations, salt, _ = ours.split("$")
    assert (kind, iterations, len(salt)) == ("7", "101", 16)  # as mosquitto_passwd: 12-byte salt
    assert theirs.split("$")[1:3] == ["7", "101"]
    assert hash_password("s3cret") != ours  # a fresh salt each time


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40), st.binary(min_size=12, max_size=12))
def test_a_hash_verifies_its_password_only(password, other, salt):
    h = hash_password(password, salt=salt)
    assert verify_password(password, h)
    assert verify_password(other, h) == (other == password)


def test_malformed_hashes_never_verify():
    for bad in ("", "$7$", "$6$101$AAAA$BBBB", "$7$x$AAAA$BBBB", "$7$101$!!$BBBB", "plain"):
        assert not verify_password("x", bad)


async def test_issue_rotate_revoke(db):
    await import_registry(db, parse_registry_file(REGISTRY))
    v0 = await broker_auth_version(db)
    issued = await issue_credentials(db, "E1", "G1")
    assert (issued.username, issued.rotated) == ("E1.G1", False)
    row = await db.fetchrow("SELECT * FROM gateway_credentials WHERE username = 'E1.G1'")
    assert verify_password(issued.password, row["password_hash"]) and issued.password not in str(dict(row))
    assert await broker_auth_version(db) > v0

    with pytest.raises(CredentialError, match="already has credentials"):
        await issue_credentials(db, "E1", "G1")
    rotated = await issue_credentials(db, "E1", "G1", rotate=True)
    assert rotated.rotated and rotated.password != issued.password
    new_hash = await db.fetchval("SELECT password_hash FROM gateway_credentials WHERE username = 'E1.G1'")
    assert verify_password(rotated.password, new_hash) and not verify_password(issued.password, new_hash)

    assert await revoke_credentials(db, "E1", "G1")
    assert not await revoke_credentials(db, "E1", "G1")
    assert [x.username for x in await broker_logins(db)] == []
    # A revoked gateway is issued new credentials without --rotate.
    again = await issue_credentials(db, "E1", "G1")
    assert [x.username for x in await broker_logins(db)] == ["E1.G1"] and again.rotated

    with pytest.raises(CredentialError, match="not in the registry"):
        await issue_credentials(db, "E1", "G9")
    assert not await revoke_credentials(db, "E2", "G1")  # never had any


async def test_ambiguous_usernames_are_refused(db):
    await import_registry(db, parse_registry_file(REGISTRY))
    assert (await issue_credentials(db, "A.B", "C")).username == "A.B.C"
    with pytest.raises(CredentialError, match="already taken"):
        await issue_credentials(db, "A", "B.C")
    assert [x.enterprise for x in await broker_logins(db)] == ["A.B"]
    # E1/"G1.monitor" would log in as the monitoring login of E1/G1, and the other way round.
    await issue_credentials(db, "E1", "G1")
    with pytest.raises(CredentialError, match="clash with E1.G1"):
        await issue_credentials(db, "E1", "G1.monitor")
    await revoke_credentials(db, "E1", "G1")
    await db.execute("DELETE FROM gateway_credentials WHERE username = 'E1.G1'")
    await issue_credentials(db, "E1", "G1.monitor")
    with pytest.raises(CredentialError, match="clash with E1.G1.monitor"):
        await issue_credentials(db, "E1", "G1")


async def test_deactivated_gateways_and_enterprises_lose_their_login(db):
    await import_registry(db, parse_registry_file(REGISTRY))
    for e, g in (("E1", "G1"), ("E1", "G2"), ("E2", "G1")):
        await issue_credentials(db, e, g)
    assert [x.username for x in await broker_logins(db)] == ["E1.G1", "E1.G2", "E2.G1"]
    v = await broker_auth_version(db)
    await db.execute("UPDATE gateways SET active = false WHERE enterprise = 'E1' AND code = 'G2'")
    assert await broker_auth_version(db) > v
    v = await broker_auth_version(db)
    await db.execute("UPDATE enterprises SET active = false WHERE id = 'E2'")
    assert await broker_auth_version(db) > v
    assert [x.username for x in await broker_logins(db)] == ["E1.G1"]
    # Liveness updates of gateways do not move the version.
    v = await broker_auth_version(db)
    await db.execute("UPDATE gateways SET online = true, last_seen_at = now(), active = active")
    assert await broker_auth_version(db) == v
    with pytest.raises(CredentialError, match="deactivated"):
        await issue_credentials(db, "E1", "G2", rotate=True)


async def test_rendered_files(db, tmp_path):
    await import_registry(db, parse_registry_file(REGISTRY))
    issued = {g: await issue_credentials(db, "E1", g) for g in ("G1", "G2")}
    logins = await broker_logins(db)
    passwd = [line for line in render_password_file(logins).splitlines() if not line.startswith("#")]
    assert [line.split(":", 1)[0] for line in passwd] == ["E1.G1", "E1.G2", "E1.G1.monitor", "E1.G2.monitor"]
    assert verify_password(issued["G2"].password, passwd[1].split(":", 1)[1])
    assert verify_password(issued["G2"].monitor_password, passwd[3].split(":", 1)[1])
    assert issued["G2"].monitor_username == "E1.G2.monitor"
    acl = render_acl_file(logins)
    assert ("user E1.G1\ntopic write yj/v1/E1/G1/up\ntopic write yj/v1/E1/G1/status\n"
            "topic read yj/v1/E1/G1/alerts\n") in acl
    # The monitoring login reads, never writes.
    assert "user E1.G1.monitor\ntopic read yj/v1/E1/G1/alerts\ntopic read yj/v1/E1/G1/errors\n" in acl
    assert acl.count("topic ") == 10 and "pattern" not in acl and "#" not in acl.split("\n", 1)[1]

    files = BrokerFiles(tmp_path / "gw.passwd", tmp_path / "gw.acl")
    assert await files.sync(db) == (2, True)
    assert await files.sync(db) == (2, False)  # unchanged: not rewritten, no reload
    assert stat.S_IMODE((tmp_path / "gw.passwd").stat().st_mode) == 0o640
    (tmp_path / "gw.acl").chmod(0o600)
    await revoke_credentials(db, "E1", "G1")
    assert await files.sync(db) == (1, True)
    assert stat.S_IMODE((tmp_path / "gw.acl").stat().st_mode) == 0o600  # an existing file's mode is kept
    assert "E1.G1" not in (tmp_path / "gw.passwd").read_text() + (tmp_path / "gw.acl").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gw.acl", "gw.passwd"]  # no temporary files left


def test_write_atomically_reports_changes(tmp_path):
    f = tmp_path / "f"
    assert write_atomically(f, "a\n") and not write_atomically(f, "a\n") and write_atomically(f, "b\n")
    assert f.read_text() == "b\n"
