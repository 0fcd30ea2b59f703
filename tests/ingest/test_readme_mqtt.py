"""The README's MQTT example ("Connecting a gateway"), run as written with the mosquitto_sub and
mosquitto_pub binaries against a real broker and service: the gateway publishes a methane reading
and the alert arrives at the monitoring login's subscriber (with one login for both, each publish
would take the subscriber's session and the alert would never arrive)."""

from __future__ import annotations

import os
import re
import subprocess
import threading

from store.gateway_credentials import issue_credentials
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from tests.support.running import running_service, service_settings
from tests.support.services import REPO, wait_for

README = REPO / "README.md"


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    return text[start:text.index("\n## ", start + 1)]


def readme_commands(section: str) -> dict[str, str]:
    """The shell block's commands by program, continuation lines joined, as a shell reads them."""
    block = re.search(r"```sh\n(.*?mosquitto_sub.*?)```", section, re.S).group(1)
    joined = re.sub(r"\\\n\s*", "", block)
    return {line.split()[0]: line.strip() for line in joined.splitlines()
            if line.strip().startswith(("mosquitto_sub", "mosquitto_pub"))}


async def test_the_readmes_mqtt_commands_work_as_written(db, db_url, broker, tmp_path):
    section = readme_section("Connecting a gateway")
    registry = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    await import_registry(db, parse_registry_file(registry))
    issued = await issue_credentials(db, "E001", "G001")
    commands = readme_commands(section)
    assert set(commands) == {"mosquitto_sub", "mosquitto_pub"}
    pid = broker.data_dir / "test-mosquitto.pid"
    pid.write_text(f"{broker.proc.pid}\n")
    settings = service_settings(db_url, broker.url, gateway_broker={
        "password_file": broker.password_file, "acl_file": broker.acl_file, "pid_file": pid, "poll_s": 0.2})
    env = {**os.environ, "PASSWORD": issued.password, "MONITOR_PASSWORD": issued.monitor_password}
    port = lambda command: command.replace("-p 1885", f"-p {broker.gateway_port}")  # noqa: E731 — the test broker's
    log = broker.data_dir / "mosquitto.log"
    async with running_service(settings):
        await wait_for(lambda: "E001.G001.monitor" in broker.password_file.read_text(), 10, what="broker files")
        sub = subprocess.Popen(["bash", "-c", port(commands["mosquitto_sub"])], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(sub.stdout), daemon=True)
        reader.start()
        try:
            # The reload after the files were written is asynchronous: wait for the subscriber's login.
            await wait_for(lambda: "as E001.G001.monitor" in log.read_text() or sub.poll() is not None, 10,
                           what="mosquitto_sub connected")
            assert sub.poll() is None, sub.stderr.read()
            pub = subprocess.run(["bash", "-c", port(commands["mosquitto_pub"])], env=env, text=True,
                                 capture_output=True, timeout=30)
            assert pub.returncode == 0, pub.stderr
            await wait_for(lambda: lines, 30, what="the alert at mosquitto_sub")
        finally:
            sub.terminate()
            sub.wait(10)
    assert "yujing.alert/2" in lines[0] and "CH4-0101" in lines[0], lines
