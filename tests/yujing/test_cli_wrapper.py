"""`make setup` puts a `yujing` command on PATH (deploy/setup/lib.sh install_cli_wrapper, run by
the python step): it runs the venv's yujing, a second run changes nothing, and a `yujing` the
setup did not write is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent  # the venv running these tests has yujing installed


def _install(bin_dir: Path) -> subprocess.CompletedProcess:
    script = f'STEP=python; source "{REPO}/deploy/setup/lib.sh"; install_cli_wrapper "{VENV}"'
    env = {**os.environ, "YUJING_BIN_DIR": str(bin_dir), "YUJING_SETUP_NO_LOCK": "1"}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_wrapper_puts_yujing_on_path_idempotently(tmp_path):
    bin_dir = tmp_path / "bin"
    first = _install(bin_dir)
    assert first.returncode == 0, first.stderr
    wrapper = bin_dir / "yujing"
    assert "installed" in first.stdout and os.access(wrapper, os.X_OK)
    before = wrapper.stat()
    second = _install(bin_dir)
    assert second.returncode == 0 and "ok:" in second.stdout, second.stdout + second.stderr
    after = wrapper.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # unchanged
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}  # no venv activated
    run = subprocess.run(["yujing", "keys", "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Usage: yujing keys" in run.stdout and "create" in run.stdout


def test_a_foreign_yujing_is_left_alone(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "yujing").write_text("#!/bin/sh\necho someone else's\n")
    r = _install(bin_dir)
    assert r.returncode == 0 and "left alone" in r.stderr
    assert (bin_dir / "yujing").read_text() == "#!/bin/sh\necho someone else's\n"
