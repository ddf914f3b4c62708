"""Exports hold no path of the machine that made them (the full export of a pipeline run is
checked in tests/test_pipeline.py)."""

from __future__ import annotations

import json

from safetensors import safe_open

from dreamgym.agents import Controller, ControllerSpec
from dreamgym.export import MACHINE_PATH, export_bundle, portable, portable_text
from dreamgym.worldmodels import load


def test_paths_become_relative_to_the_source_run_or_bare_names(tmp_path):
    run = tmp_path / "run"
    (run / "evolve" / "mean").mkdir(parents=True)
    info = {"data": str(run / "data"), "datasets": [str(run / "data-1"), "/elsewhere/d"],
            "n": 3, "kind": "vae-mdnrnn", "world_model": ".."}  # fmt: skip
    assert portable(info, run) == {"data": "data", "datasets": ["data-1", "d"], "n": 3,
                                   "kind": "vae-mdnrnn", "world_model": ".."}  # fmt: skip
    line = f"controller {run}/evolve/mean: dream survival 1.00x real, tau 1/2"
    assert portable_text(line, run) == "controller evolve/mean: dream survival 1.00x real, tau 1/2"
    # The run as given at another working directory is recognised by what exists under it.
    assert portable_text("controller runs/x/evolve/mean: OK", run) == "controller evolve/mean: OK"
    assert portable_text("read /home/someone/notes.txt", run) == "read notes.txt"
    assert MACHINE_PATH.search(f"see {run}") and not MACHINE_PATH.search("1.5 ep/s, 0.3/step")


def test_an_exported_bundle_names_no_path_of_this_machine(doom_bundle, tmp_path):
    model = load(doom_bundle)
    spec = ControllerSpec.for_world_model(model)
    Controller(spec).save(tmp_path / "c", doom_bundle)
    out = export_bundle(doom_bundle, tmp_path / "export", tmp_path / "c")
    texts = [(out / name).read_text() for name in ("bundle.json", "controller/controller.json")]
    for name in ("vae.safetensors", "mdnrnn.safetensors"):
        with safe_open(str(out / name), "pt") as f:
            texts.append(json.dumps(f.metadata()))
    for text in texts:
        assert str(tmp_path.parent) not in text and not MACHINE_PATH.search(text), text[:300]
    info = json.loads(texts[0])
    assert info["exported"]["from"] == "doom" and info["training"]["data"] == "data"
    exported, meta = Controller.load(out / "controller")  # the copy still finds its bundle
    exported.check_fits(load(meta["world_model"]))
