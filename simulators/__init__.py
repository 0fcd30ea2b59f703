"""Simulators: sensor fleets of the five industries, misbehaving gateways, incident scenarios with
ground truth, and the MQTT publisher that feeds yujing (``yujing simulate``, ``yujing demo``).

``simulators.load`` (the stepped load runner of ``yujing loadtest``) and ``simulators.drill``
(``yujing drill``: score one incident against a live deployment) build on the emitter, the
publisher and :class:`GroundTruth`.
"""

from simulators import drill, load  # noqa: F401  (submodules, for `simulators.drill` and `simulators.load`)
from simulators.drill import DrillOptions, DrillReport, DrillScore, run_drill
from simulators.encoder import MALFORMED_EXPECTED, encode_payloads, sensor_prefix
from simulators.fleet import Fleet, FleetConfig, FleetConfigError, GatewayBehaviour, build_fleet, load_fleet_config
from simulators.gateway import Emitter, EmitterStats, OutMessage, StatusChange
from simulators.load import LoadPlan, LoadReport, run_load
from simulators.presets import load_preset, preset_names
from simulators.publisher import Publisher, PublisherOptions, PublisherStats
from simulators.registry import registry_document, write_registry
from simulators.run import RunOptions, RunReport, run_simulation, run_simulation_async
from simulators.scenarios import GroundTruth, Milestone, ScenarioError, ScenarioSpec, bind, load_scenario, scenario_names

__all__ = [
    "MALFORMED_EXPECTED",
    "DrillOptions",
    "DrillReport",
    "DrillScore",
    "Emitter",
    "EmitterStats",
    "Fleet",
    "FleetConfig",
    "FleetConfigError",
    "GatewayBehaviour",
    "GroundTruth",
    "LoadPlan",
    "LoadReport",
    "Milestone",
    "OutMessage",
    "Publisher",
    "PublisherOptions",
    "PublisherStats",
    "RunOptions",
    "RunReport",
    "ScenarioError",
    "ScenarioSpec",
    "StatusChange",
    "bind",
    "build_fleet",
    "encode_payloads",
    "load_fleet_config",
    "load_preset",
    "load_scenario",
    "preset_names",
    "registry_document",
    "run_drill",
    "run_load",
    "run_simulation",
    "run_simulation_async",
    "scenario_names",
    "sensor_prefix",
    "write_registry",
]
