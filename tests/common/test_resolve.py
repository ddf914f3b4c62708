"""Functions named ``"package.module:function"``: imported on first use; a bad name is a one-line
DreamgymError naming it, also where a bundle kind or an env's goal-success rule names one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dreamgym.common.resolve import resolve_callable
from dreamgym.envs.pusht import success
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels import bundle, load, register_world_model_kind


def test_a_name_resolves_to_its_function():
    assert resolve_callable("dreamgym.envs.pusht:success") is success
    assert resolve_callable("numpy.linalg:norm")(np.array([3.0, 4.0])) == 5.0


@pytest.mark.parametrize(
    "name, expected",
    [
        ("dreamgym.envs.pusht.success", "must be 'package.module:function'"),
        (":success", "must be 'package.module:function'"),
        ("dreamgym.envs.pusht:", "must be 'package.module:function'"),
        ("dreamgym.no_such_module:f", "module 'dreamgym.no_such_module' does not import"),
        ("dreamgym.envs.pusht:no_such_function", "has no function 'no_such_function'"),
        ("dreamgym.envs.pusht:SUCCESS_DISTANCE", "has no function 'SUCCESS_DISTANCE'"),
    ],
)
def test_a_bad_name_is_a_one_line_error_naming_it(name, expected):
    with pytest.raises(DreamgymError, match="goal rule") as caught:
        resolve_callable(name, "goal rule")
    message = str(caught.value)
    assert expected in message and repr(name) in message and "\n" not in message


def test_a_bundle_kind_naming_a_missing_loader(tmp_path, monkeypatch):
    monkeypatch.setitem(bundle._LOADERS, "test-missing", "dreamgym.worldmodels.nope:load")
    (tmp_path / "bundle.json").write_text(json.dumps({"kind": "test-missing"}))
    with pytest.raises(DreamgymError, match="loader of bundle kind 'test-missing'.*does not"):
        load(tmp_path)


def test_a_registered_kind_named_by_string_loads(tmp_path, monkeypatch):
    monkeypatch.setitem(bundle._LOADERS, "test-named", None)
    register_world_model_kind("test-named", "tests_resolve_loader:load")
    (tmp_path / "tests_resolve_loader.py").write_text(
        "class Model:\n    def __init__(self, info):\n        self.info = info\n\n"
        "def load(root, info, device):\n    return Model(info)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bundle.json").write_text(json.dumps({"kind": "test-named", "n": 3}))
    assert load(tmp_path / "b").info["n"] == 3
