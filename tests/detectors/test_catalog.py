import pytest

from domain import catalog
from domain.setpoints import DEFAULTS
from domain.severity import Severity


def test_every_default_cites_a_source_and_kind_exists():
    for (kind, _cls), points in DEFAULTS.items():
        assert kind in catalog.KINDS
        for p in points:
            assert p.source and p.clear <= p.value if p.side == "high" else p.clear >= p.value


def test_coal_methane_triple_and_q1_resolved_conservatively():
    t0 = {p.name: p for p in catalog.effective_setpoints("methane", "T0")}
    assert (t0["alarm"].value, t0["power_cut"].value, t0["power_cut"].clear) == (1.0, 1.5, 1.0)
    assert "Q1" in t0["power_cut"].source
    assert t0["alarm"].severity == Severity.WARNING and t0["power_cut"].severity == Severity.ALARM


def test_overrides_may_tighten():
    pts = {p.name: p for p in catalog.effective_setpoints("methane", "T1", {"alarm": 0.8, "restore": 0.7, "pre": 0.6})}
    assert pts["alarm"].value == 0.8 and pts["power_cut"].clear == 0.7 and pts["pre"].severity == Severity.NOTICE


@pytest.mark.parametrize(
    "overrides, word",
    [({"alarm": 1.2}, "'alarm'"), ({"power_cut": 2.0}, "'power_cut'"), ({"restore": 1.4}, "restore"),
     ({"bogus": 1}, "'bogus'"), ({"alarm": None}, "'alarm'"), ({"alarm": "x"}, "'alarm'")],
)
def test_loosening_overrides_raise_naming_the_setpoint(overrides, word):
    with pytest.raises(ValueError, match=word):
        catalog.check_overrides("methane", "T1", overrides)


def test_low_side_overrides_must_not_lower():
    catalog.check_overrides("o2", "", {"deficiency": 19.8})
    with pytest.raises(ValueError, match="deficiency"):
        catalog.check_overrides("o2", "", {"deficiency": 18.0})


def test_unknown_kind_and_class():
    with pytest.raises(catalog.UnknownKindError):
        catalog.check_overrides("unobtainium", "", {})
    with pytest.raises(ValueError, match="T99"):
        catalog.check_overrides("methane", "T99", {})
