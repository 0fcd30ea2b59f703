"""The public surface is what ``alerts`` exports; keep it deliberate."""

import alerts


def test_exported_members():
    assert sorted(alerts.__all__) == sorted(
        ["Alert", "AlertFeed", "AlertNotFound", "AlertsService", "Colour", "Policy", "PolicyError", "SilenceError",
         "SilenceNotFound", "State", "Subscription", "TransitionError", "VersionConflict", "from_config", "journaled",
         "load_policy", "places", "render", "silences", "transitions"]
    )
    for name in alerts.__all__:
        assert getattr(alerts, name) is not None


def test_transition_functions_for_the_api():
    import inspect

    for name in ("acknowledge", "comment", "assign", "shelve", "unshelve", "reset_latch", "resolve", "close"):
        params = list(inspect.signature(getattr(alerts.transitions, name)).parameters)
        assert params[:3] == ["conn", "alert_id", "actor"], name
        assert "expected_version" in params, name
