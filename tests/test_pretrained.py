"""The pretrained dreams shipped with the package: they load, pass Gymnasium's checks, are what
their model cards say, and give way to the user's own bundles."""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from dreamgym.agents import Controller
from dreamgym.agents.evaluate import evaluate_controller
from dreamgym.common.pretrained import ROOT, pretrained_names, resolve_path
from dreamgym.errors import DreamgymError
from dreamgym.export import card_checksums, checksums
from dreamgym.worldmodels import load

CONTROLLED = {"carracing": "Dream-CarRacing-v0", "doom-takecover": "Dream-DoomTakeCover-v0"}
DREAM_IDS = {**CONTROLLED, "pusht": "Dream-PushT-v0"}


def test_every_dream_env_ships_a_pretrained_model():
    assert pretrained_names() == sorted(DREAM_IDS)
    size = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    assert size < 40 * 2**20  # float16 weights without training state


@pytest.mark.parametrize("name", sorted(DREAM_IDS))
def test_a_fresh_install_dreams_with_the_shipped_bundle(name, tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMGYM_HOME", str(tmp_path))  # the user has no bundle of their own
    env = gym.make(DREAM_IDS[name])
    check_env(env.unwrapped, skip_render_check=name == "pusht")  # no decoder: no frames
    _, info = env.reset(seed=0)
    assert info["world_model"] == f"pretrained:{name}"
    assert f"world_model=pretrained:{name}" in str(env)
    assert card_checksums(ROOT / name) == checksums(ROOT / name)


@pytest.mark.parametrize("name", sorted(CONTROLLED))
def test_the_shipped_controller_fits_and_drives_the_dream(name):
    controller, meta = Controller.load(f"pretrained:{name}")
    controller.check_fits(load(meta["world_model"]))
    returns = evaluate_controller(f"pretrained:{name}", episodes=2, backend="dream",
                                  max_episode_steps=30, seed=0)  # fmt: skip
    assert returns.shape == (2,) and np.isfinite(returns).all()


def test_shipped_files_hold_no_path_of_the_machine_that_made_them():
    """Every shipped JSON and markdown file, and the metadata of every shipped checkpoint."""
    from safetensors import safe_open

    from dreamgym.export import MACHINE_PATH

    texts = {p: p.read_text() for p in ROOT.rglob("*") if p.suffix in (".json", ".md")}
    for path in ROOT.rglob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            texts[path] = json.dumps(f.metadata())
    # V+M: bundle.json, controller.json, MODEL_CARD.md, 4 checkpoints (CarRacing: 2 more Ms);
    # latent: bundle.json, MODEL_CARD.md, 2 checkpoints
    assert len(texts) == 2 * 7 + 2 + 4
    for path, text in texts.items():
        for machine in ("/work/", "/root/", "/home/", "/tmp/", "runs/"):
            assert machine not in text, f"{path} names {machine!r}"
        found = MACHINE_PATH.search(text)
        assert found is None, f"{path} names the path {found.group(0)!r}"


def test_every_form_of_a_controller_path_names_the_same_controller():
    """One resolver for every command: a directory, its controller.json, pretrained:NAME."""
    from dreamgym.agents.controller import controller_policy
    from dreamgym.common.pretrained import resolve_controller

    directory = ROOT / "doom-takecover" / "controller"
    forms = ["pretrained:doom-takecover", directory, directory / "controller.json",
             str(directory / "controller.json")]  # fmt: skip
    assert {resolve_controller(form) for form in forms} == {directory}
    params = [Controller.load(form)[0].get_params() for form in forms]
    assert all(np.array_equal(params[0], p) for p in params[1:])
    assert controller_policy("pretrained:doom-takecover").label == str(directory.resolve())


def test_the_users_own_bundle_wins(car_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMGYM_HOME", str(tmp_path))
    shutil.copytree(car_bundle, tmp_path / "runs" / "car", ignore=shutil.ignore_patterns("tb"))
    env = gym.make("Dream-CarRacing-v0")
    _, info = env.reset(seed=0)
    assert info["world_model"] == str((tmp_path / "runs" / "car").resolve())


def test_unknown_pretrained_names_are_refused():
    with pytest.raises(DreamgymError, match="no pretrained model 'pretrained:mario'; shipped: "):
        resolve_path("pretrained:mario")


def test_short_names_work_on_the_command_line(tmp_path, capsys, monkeypatch):
    from dreamgym.cli import main

    monkeypatch.chdir(tmp_path)  # outputs about a shipped model go under ./NAME, not the package
    argv = ["evaluate", "--controller", "pretrained:doom-takecover", "--backend", "dream",
            "--episodes", "2", "--max-steps", "20"]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "doom-takecover" / "evaluation-dream.json").exists()
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "wrote doom-takecover/evaluation-dream.json (choose where with --out)"
    assert main([*argv, "--out", str(tmp_path / "e.json")]) == 0  # --out: where the JSON goes
    assert json.loads((tmp_path / "e.json").read_text())["episodes"] == 2
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {tmp_path / 'e.json'}"
    assert main([*argv, "--out", str(tmp_path)]) == 0  # a directory: the JSON goes in it
    assert json.loads((tmp_path / "evaluation-dream.json").read_text())["episodes"] == 2

    out = tmp_path / "evolve"
    argv = ["evolve", "--world-model", "pretrained:doom-takecover", "--init",
            "pretrained:doom-takecover", "--generations", "1", "--preset", "debug",
            "--max-steps", "20", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert (out / "mean" / "controller.json").exists()
    gif = str(tmp_path / "car.gif")
    assert main(["render", "--world-model", "pretrained:carracing", "--controller",
                 "pretrained:carracing", "--steps", "5", "--out", gif]) == 0  # fmt: skip
    assert (tmp_path / "car.gif").stat().st_size > 0


@pytest.fixture(scope="module")
def shipped_root(pusht_latent, tmp_path_factory):
    """A pretrained directory as the package's would be with a Push-T model exported into it
    (``pusht_latent``, without its training data at hand: the export names it relative to the
    run). Tests point ``dreamgym.common.pretrained.ROOT`` at it (:func:`shipping`) and never
    write into the package."""
    from dreamgym.export_latent import export_latent

    root = tmp_path_factory.mktemp("pretrained")
    export_latent(pusht_latent, root / "pusht")
    return root


@pytest.fixture
def shipping(shipped_root, monkeypatch):
    """The pretrained models are ``shipped_root``'s (the package's ROOT, patched)."""
    from dreamgym.common import pretrained

    monkeypatch.setattr(pretrained, "ROOT", shipped_root)
    return shipped_root


def test_a_fresh_install_dreams_push_t_with_the_shipped_model(shipping, tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMGYM_HOME", str(tmp_path))  # the user has no bundle of their own
    assert pretrained_names() == ["pusht"]
    env = gym.make("Dream-PushT-v0")
    check_env(env.unwrapped, skip_render_check=True)  # no decoder: a planning model
    obs, info = env.reset(seed=0)
    assert info["world_model"] == "pretrained:pusht"
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(obs).all() and np.isfinite(reward)
    assert card_checksums(shipping / "pusht") == checksums(shipping / "pusht")


@pytest.mark.slow
def test_plan_with_the_shipped_model_as_pasted_collects_its_own_held_out_goals(
    shipping, pusht_latent, tmp_path, monkeypatch, capsys
):
    from dreamgym.cli import main
    from dreamgym.rollouts import RolloutDataset
    from dreamgym.rollouts.store import read_manifest

    before = {p: p.read_bytes() for p in shipping.rglob("*") if p.is_file()}
    # The directory the model was trained in holds its data under the names the export
    # records ('data'): plan must still not take it for the model's validation episodes.
    monkeypatch.chdir(pusht_latent.parent)
    assert main(["plan", "--world-model", "pretrained:pusht", "--episodes", "10"]) == 0
    out = pusht_latent.parent / "pusht" / "plan"  # ./NAME/plan, never the package
    report = json.loads((out / "plan.json").read_text())
    pairs = report["pair_set"]
    assert (pairs["kind"], pairs["held_out"], pairs["policy"]) == ("collected", True, "weak-expert")
    assert pairs["note"].startswith(
        "the trainer's validation episodes ('data') are not at hand, named relative to the run "
        "the model was exported from: 2 held-out episodes collected with weak-expert (the "
        "first training dataset's policy; the others': pusher-random) and base seed 99 "
        "(the training data's: 0, 1000)"
    )
    held = out / "held-out-seed99"
    assert pairs["data"] == str(held.resolve()) and report["world_model"] == "pretrained:pusht"
    assert RolloutDataset(held).meta["policy"] == "weak-expert"
    training = set()
    for data in ("data", "data-pusher"):
        training |= {e["seed"] for e in read_manifest(pusht_latent.parent / data).values()}
    assert {e["seed"] for e in read_manifest(held).values()}.isdisjoint(training)
    assert report["pairs"] == 10 and report["policies"]["oracle"]["successes"] >= 9
    assert "pairs: collected (the trainer's validation episodes" in capsys.readouterr().out
    assert len(list(out.glob("*.mp4"))) == 9  # 3 pairs filmed per policy
    assert {p: p.read_bytes() for p in shipping.rglob("*") if p.is_file()} == before


def test_every_file_of_a_latent_export_would_be_installed(shipped_root):
    """setup.cfg's package data names the files of a pretrained directory by pattern: a Push-T
    model exported there is installed with the package, like the other two."""
    import configparser
    from pathlib import Path, PurePosixPath

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    patterns = setup["options.package_data"]["dreamgym"].split()
    files = [PurePosixPath("pretrained", p.relative_to(shipped_root).as_posix())
             for p in shipped_root.rglob("*") if p.is_file()]  # fmt: skip
    assert len(files) == 4  # bundle.json, MODEL_CARD.md, the model, the start/goal frames
    for path in files:
        assert any(path.match(pattern) for pattern in patterns), path
