"""Shipped fleets (simulators/presets/*.yaml), by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from simulators.fleet import FleetConfig, FleetConfigError, load_fleet_config


def preset_dir() -> Path:
    return Path(str(resources.files("simulators") / "presets"))


def preset_names() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def load_preset(name: str, *, seed: int | None = None) -> FleetConfig:
    path = preset_dir() / f"{name}.yaml"
    if not path.exists():
        raise FleetConfigError(f"unknown preset {name!r}; shipped: {', '.join(preset_names())}")
    return load_fleet_config(path, seed=seed)
