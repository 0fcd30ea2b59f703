"""A test host outside loopback: a network namespace of the test's own, joined to this host by a
veth pair, so "a client on the network" is tested without sending traffic anywhere but between
this machine's own test hosts.

    with outside_host() as host:
        host.python("import httpx; print(httpx.get(f'http://{host.server_address}:8000/').status_code)")

``server_address`` is this host's address as the outside host sees it (a server bound to 0.0.0.0
answers there); a connection from the namespace arrives from ``client_address``, which is not
loopback. The namespace and the veth pair are removed on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator

from tests.support.services import REPO

COMMAND_TIMEOUT_S = 60


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=COMMAND_TIMEOUT_S)


@dataclasses.dataclass(frozen=True, slots=True)
class OutsideHost:
    namespace: str
    server_address: str  # this host, as seen from the namespace
    client_address: str  # the namespace's own address

    def python(self, code: str, timeout_s: float = COMMAND_TIMEOUT_S) -> str:
        """Run ``code`` with this interpreter inside the namespace; its stdout, stripped."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-c", code],
            capture_output=True, text=True, timeout=timeout_s, cwd=REPO,
        )
        if done.returncode != 0:
            raise AssertionError(f"command in {self.namespace} failed: {done.stderr[-2000:]}")
        return done.stdout.strip()


@contextlib.contextmanager
def outside_host() -> Iterator[OutsideHost]:
    tag = uuid.uuid4().hex[:6]
    namespace, host_if, ns_if = f"yjt{tag}", f"yjh{tag}", f"yjn{tag}"
    subnet = random.randrange(0, 1 << 14)  # a /30 inside 198.18.0.0/15 (RFC 2544 test range)
    base = (198 << 24) | (18 << 16) | (subnet << 2)
    server, client = (f"{(base + i) >> 24 & 255}.{(base + i) >> 16 & 255}.{(base + i) >> 8 & 255}.{(base + i) & 255}"
                      for i in (1, 2))
    _ip("netns", "add", namespace)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", namespace)
        _ip("addr", "add", f"{server}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", namespace, "addr", "add", f"{client}/30", "dev", ns_if)
        _ip("-n", namespace, "link", "set", ns_if, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        yield OutsideHost(namespace, server, client)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_if)
        _ip("netns", "del", namespace)
