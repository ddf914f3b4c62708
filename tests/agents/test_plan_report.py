"""plan_report refuses bad values before it loads or writes anything (its measurement and files:
tests/agents/test_planning.py and test_goals.py, through ``dreamgym plan``)."""

from __future__ import annotations

import pytest

from dreamgym.agents.plan_report import plan_report
from dreamgym.errors import DreamgymError
from dreamgym.presets import preset


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"budget": 0}, "budget must be an integer >= 1, got 0"),
        ({"proprio_weight": -1.0}, "proprio weight must be a finite number >= 0, got -1.0"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, options, message):
    out = tmp_path / "plan"
    with pytest.raises(DreamgymError, match=message):
        plan_report(tmp_path / "no-bundle", preset("planner", "debug"), out, **options)
    assert not out.exists()


def test_a_missing_world_model_is_named(tmp_path):
    with pytest.raises(DreamgymError, match="no-bundle"):
        plan_report(tmp_path / "no-bundle", preset("planner", "debug"), tmp_path / "plan")
    assert not (tmp_path / "plan").exists()
