from __future__ import annotations

import pytest

from simulators import build_fleet, load_preset

START_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z = 08:00 北京时间


@pytest.fixture(scope="session")
def demo_fleet():
    return build_fleet(load_preset("jiangxi-demo"))
