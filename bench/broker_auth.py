"""Wrong MQTT passwords against the gateways' listener, yujing's failed-login throttle off and on:
``python bench/broker_auth.py [--seconds S] [--workers W]``.

A private broker from the project's configuration; W threads send MQTT 3.1.1 CONNECTs with wrong
passwords for one gateway login from one address (127.0.0.2) for S seconds, each waiting for its
CONNACK. Prints attempts per second, how many reached the broker's password check, the broker's
log lines, and whether the right password still works from that address afterwards (it must not
while the address is blocked) and from another (it must).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ingest.test_broker_logins import raw_connect  # noqa: E402
from tests.support.services import Broker  # noqa: E402

PASSWORD = "right-password"


def hammer(port: int, seconds: float, workers: int) -> tuple[int, float]:
    counts = [0] * workers
    deadline = time.perf_counter() + seconds

    def work(i: int) -> None:
        while time.perf_counter() < deadline:
            assert raw_connect(port, "E1.G1", f"guess-{i}-{counts[i]}", "127.0.0.2") == 5
            counts[i] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.perf_counter() - start


def run(name: str, overrides: dict[str, str], seconds: float, workers: int) -> None:
    broker = Broker(overrides=overrides)
    broker.start()
    try:
        broker.password_file.write_text(f"E1.G1:{PASSWORD}\n")
        subprocess.run(["mosquitto_passwd", "-U", str(broker.password_file)], check=True)
        broker.proc.send_signal(1)  # SIGHUP: re-read the password file
        deadline = time.monotonic() + 10
        while raw_connect(broker.gateway_port, "E1.G1", PASSWORD, "127.0.0.1") != 0:
            if time.monotonic() > deadline:
                raise TimeoutError("the broker did not take the password file")
            time.sleep(0.1)
        n, elapsed = hammer(broker.gateway_port, seconds, workers)
        log = (broker.data_dir / "mosquitto.log").read_text()
        blocked = "yujing-auth: user 'E1.G1' from 127.0.0.2 refused" in log
        checked = n if not blocked else 5  # with the throttle, only the attempts before the block
        after_attacker = raw_connect(broker.gateway_port, "E1.G1", PASSWORD, "127.0.0.2")
        after_gateway = raw_connect(broker.gateway_port, "E1.G1", PASSWORD, "127.0.0.1")
        print(f"{name}: {n / elapsed:,.0f} wrong logins/s ({n:,} in {elapsed:.1f} s, {workers} threads); "
              f"{checked:,} reached the password check; broker log {len(log.splitlines()):,} lines; "
              f"right password afterwards: CONNACK {after_attacker} from 127.0.0.2, {after_gateway} from 127.0.0.1",
              flush=True)
    finally:
        broker.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    run("throttle off (plugin_opt_max_failures 0)", {"plugin_opt_max_failures": "0"}, args.seconds, args.workers)
    run("throttle on (yujing.conf: 5 per login and address, 30 per address, 60 s; blocked 300 s)", {},
        args.seconds, args.workers)


if __name__ == "__main__":
    main()
