"""Run the yujing service for a test: in this process, or as a child process to kill."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.services import free_port
from yujing.service import Service
from yujing.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def service_settings(db_url: str, mqtt_url: str, **overrides) -> Settings:
    overrides.setdefault("mqtt_client_id", f"yj-test-{uuid.uuid4().hex[:8]}")
    overrides.setdefault("http_port", free_port())  # the API of every test service on its own port
    return Settings(database_url=db_url, mqtt_url=mqtt_url, **overrides)


@contextlib.asynccontextmanager
async def running_service(settings: Settings):
    """The service in this event loop; stopped gracefully (as by SIGTERM) on exit."""
    service = Service(settings)
    task = asyncio.create_task(service.run())
    ready = asyncio.create_task(service.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # raises the start-up error
    if ready not in done:
        task.cancel()
        raise TimeoutError("service did not become ready within 30 s")
    try:
        yield service
    finally:
        service.stop.set()
        await asyncio.wait_for(task, 60)


class ServiceProcess:
    """``python -m yujing run`` as a child process with the given settings in its environment."""

    def __init__(self, db_url: str, mqtt_url: str, client_id: str, log_path: Path, **env: str) -> None:
        self.env = {
            **os.environ,
            "YUJING_DATABASE_URL": db_url,
            "YUJING_MQTT_URL": mqtt_url,
            "YUJING_MQTT_CLIENT_ID": client_id,
            "YUJING_LOG_FORMAT": "json",
            "YUJING_HTTP_PORT": str(free_port()),
            **env,
        }
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "yujing", "run"], env=self.env, cwd=REPO, stdout=log, stderr=log)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout_s: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
