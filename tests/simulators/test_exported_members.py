import simulators


def test_public_surface_is_what_init_exports():
    exported = {name for name in dir(simulators) if not name.startswith("_")}
    modules = {"drill", "load", "loadreport", "encoder", "fleet", "gateway", "presets", "publisher", "registry", "run", "scenarios", "signals", "sites"}
    assert exported - modules == set(simulators.__all__)
