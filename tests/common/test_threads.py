"""Torch threads per kind of work: one for per-step inference, torch's default for training,
``--threads`` (and ``$OMP_NUM_THREADS``) over both; the caller's count is restored after."""

from __future__ import annotations

import pytest
import torch

from dreamgym import worldmodels
from dreamgym.agents.evaluate import evaluate_agent
from dreamgym.cli import main
from dreamgym.common import threads
from dreamgym.common.threads import set_threads, threads_for
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels.vm.train_vae import VAETrainer


class ThreadsSeen:
    """An agent that notes torch's thread count whenever it acts, and always accelerates."""

    observation_mode = "z"

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        self.seen.add(torch.get_num_threads())
        return torch.tensor([[0.0, 1.0, 0.0]]).expand(len(obs), 3)


@pytest.fixture
def default_threads(monkeypatch):
    """No thread count chosen by the user; the caller runs torch on 2 threads."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    set_threads(None)
    torch.set_num_threads(before)


def test_inference_runs_on_one_thread_and_the_callers_count_returns(car_bundle, default_threads):
    assert threads_for("inference") == 1
    assert threads_for("training") == threads._TORCH_DEFAULT  # torch's own: one per core
    agent = ThreadsSeen()
    evaluate_agent(agent, worldmodels.load(car_bundle), 3, "dream", max_episode_steps=5)
    assert agent.seen == {1} and torch.get_num_threads() == 2


def test_a_chosen_count_replaces_every_default(car_bundle, default_threads, monkeypatch):
    set_threads(2)
    assert threads_for("inference") == threads_for("training") == 2
    agent = ThreadsSeen()
    evaluate_agent(agent, worldmodels.load(car_bundle), 3, "dream", max_episode_steps=5)
    assert agent.seen == {2}
    set_threads(None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # torch read it at start-up: its default stands
    assert threads_for("inference") == threads._TORCH_DEFAULT
    with pytest.raises(DreamgymError, match="threads must be an integer >= 1, got 0"):
        set_threads(0)
    with pytest.raises(DreamgymError, match="work must be one of inference, training"):
        threads_for("rendering")


def test_training_runs_on_torchs_default(car_data, tmp_path, default_threads):
    torch.set_num_threads(1)

    class Noting(VAETrainer):
        def train_epoch(self, progress: bool) -> dict[str, float]:
            self.seen = torch.get_num_threads()
            return super().train_epoch(progress)

    trainer = Noting(car_data, tmp_path / "vae", preset="debug", overrides={"epochs": 1},
                     device="cpu")  # fmt: skip
    trainer.fit(False)
    assert trainer.seen == threads._TORCH_DEFAULT and torch.get_num_threads() == 1


def test_a_bad_thread_count_is_one_line_and_writes_nothing(car_bundle, tmp_path, capsys):
    out = tmp_path / "dream.mp4"
    argv = ["render", "--world-model", str(car_bundle), "--out", str(out), "--threads", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dreamgym render: error: threads must be an integer >= 1, got 0"
    assert not out.exists()
