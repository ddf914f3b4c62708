"""CEM, MPPI and MPC: the searches find known optima; planning with a perfect model reaches
goals, and with a tiny trained model it beats random."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

from dreamgym.agents.planning import PLANNERS, Planner, PlannerPolicy, planner_preset, search
from dreamgym.errors import DreamgymError

SIZE = 32


@dataclass
class MassState:
    p: torch.Tensor  # (N, 2) position in [0, 1]^2
    v: torch.Tensor  # (N, 2) velocity


def draw(p: np.ndarray) -> np.ndarray:
    """A frame with one white pixel where the mass is."""
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    i, j = np.clip(np.round(p * (SIZE - 1)).astype(int), 0, SIZE - 1)
    frame[i, j] = 255
    return frame


def dynamics(p, v, a):
    v = 0.8 * v + 0.05 * a
    return (p + v).clamp(0, 1) if torch.is_tensor(p) else np.clip(p + v, 0, 1), v


class PointMass:
    """The ground-truth model of :class:`PointMassEnv` behind protocol v2 (a perfect model)."""

    feature_modes = ("p",)
    step_options = ()

    def __init__(self) -> None:
        self.env, self.device = "point-mass", torch.device("cpu")
        self.info = {"action_low": [-1.0, -1.0]}
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def feature_size(self, mode=None) -> int:
        return 2

    def features(self, state, mode=None):
        return state.p

    def initial_state(self, n, generator=None):
        return MassState(torch.full((n, 2), 0.5), torch.zeros(n, 2))

    def encode(self, frames):
        flat = frames[..., 0].flatten(1).float().argmax(1)
        p = torch.stack([flat // SIZE, flat % SIZE], 1).float() / (SIZE - 1)
        return MassState(p, torch.zeros_like(p))

    def step(self, state, action, generator=None):
        return MassState(*dynamics(state.p, state.v, action))

    def advance(self, state, action, frames):
        return MassState(self.encode(frames).p, dynamics(state.p, state.v, action)[1])

    def cost(self, state, goal):
        return (state.p - goal.p).pow(2).sum(1)


class PointMassEnv:
    """The real task: a mass starting at (0.5, 0.5) is pushed towards a goal."""

    def reset(self, start):
        self.p, self.v = np.array(start, float), np.zeros(2)
        return draw(self.p)

    def step(self, action):
        self.p, self.v = dynamics(self.p, self.v, np.clip(action, -1, 1))
        return draw(self.p)


class LearnedPointMass(PointMass):
    """PointMass with learnt dynamics: a small MLP fit to random transitions of the real task."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 64), torch.nn.Tanh(),
                                       torch.nn.Linear(64, 4))  # fmt: skip
        p, v = torch.rand(4096, 2, generator=g), 0.1 * torch.randn(4096, 2, generator=g)
        a = torch.rand(4096, 2, generator=g) * 2 - 1
        p_next, v_next = dynamics(p, v, a)
        x, y = torch.cat([p, v, a], 1), torch.cat([p_next - p, v_next], 1)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=3e-3)
        for _ in range(600):
            optimizer.zero_grad()
            loss = (self.net(x) - y).pow(2).mean()
            loss.backward()
            optimizer.step()
        self.loss = float(loss)

    @torch.no_grad()
    def step(self, state, action, generator=None):
        out = self.net(torch.cat([state.p, state.v, action], 1))
        return MassState((state.p + out[:, :2]).clamp(0, 1), out[:, 2:])


def reach(model, goals: np.ndarray, config, rng: np.random.Generator) -> dict[str, int]:
    """Goals reached (within 0.05) in 40 steps from (0.5, 0.5): MPC over ``model``, and random."""
    reached = {"planner": 0, "random": 0}
    for k, goal in enumerate(goals):
        for name in reached:
            env = PointMassEnv()
            frame = env.reset([0.5, 0.5])
            policy = PlannerPolicy(model, config, draw(goal), seed=k, budget=40)
            for _ in range(40):
                action = policy.act(frame) if name == "planner" else rng.uniform(-1, 1, 2)
                frame = env.step(action)
            reached[name] += np.linalg.norm(env.p - goal) < 0.05
    return reached


@pytest.mark.parametrize("method", PLANNERS)
def test_the_search_finds_the_minimum_of_a_quadratic(method):
    target = torch.tensor([[0.3, -0.7], [0.9, 0.1], [-0.2, 0.4]])
    objective = lambda c: (c - target).pow(2).sum((1, 2))  # noqa: E731
    config = planner_preset("dino-wm", method=method, horizon=3, iterations=20, execute=1)
    plan, best = search(objective, torch.zeros(3, 2), -torch.ones(2), torch.ones(2), config,
                        torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.allclose(plan, target, atol=0.02)
    assert best[-1] < 1e-3 and best[-1] <= best[0]


def test_the_same_seed_gives_the_same_plan():
    model = PointMass()
    state, goal = model.initial_state(1), MassState(torch.tensor([[0.9, 0.2]]), torch.zeros(1, 2))
    plans = [Planner(model, planner_preset("debug"), seed=3).plan(state, goal)[0] for _ in "ab"]
    assert torch.equal(plans[0], plans[1])


@pytest.mark.parametrize("method", PLANNERS)
def test_mpc_with_a_perfect_model_reaches_its_goals_and_random_does_not(method):
    rng = np.random.default_rng(0)
    config = planner_preset("cpu", method=method, horizon=8, samples=64, elites=8, iterations=6)
    reached = reach(PointMass(), rng.uniform(0.15, 0.85, (6, 2)), config, rng)
    assert reached["planner"] == 6 and reached["random"] <= 1


def test_a_chunk_ensemble_executes_the_mean_of_the_plans_that_cover_the_step():
    goal = draw(np.array([0.8, 0.3]))
    config = planner_preset("debug", horizon=4, ensemble=2)
    policy = PlannerPolicy(PointMass(), config, goal, seed=0, budget=40)
    env = PointMassEnv()
    frame = env.reset([0.5, 0.5])
    policy.act(frame)  # one plan: its first action alone
    assert torch.equal(policy.block_action, policy.plan[0])
    first = policy.plan
    frame = env.step(policy.block_action.numpy())
    policy.act(frame)  # the new plan's first action and the old plan's second, averaged
    assert not torch.equal(policy.plan[0], first[1])
    assert torch.allclose(policy.block_action, (first[1] + policy.plan[0]) / 2)
    assert "2 chunks" in policy.label
    with pytest.raises(DreamgymError, match="planner ensemble"):
        planner_preset("debug", ensemble=0)


def test_mpc_with_a_chunk_ensemble_still_reaches_its_goals():
    rng = np.random.default_rng(0)
    config = planner_preset("cpu", horizon=8, samples=64, elites=8, iterations=6, ensemble=3)
    assert reach(PointMass(), rng.uniform(0.15, 0.85, (6, 2)), config, rng)["planner"] == 6


class ProprioMass(PointMass):
    """PointMass read through proprioception, whose goal cost, like a latent model's, has an
    imprecise visual term (it places the mass ``BIAS`` off) and an exact proprio term."""

    uses_proprio = True
    BIAS = torch.tensor([0.06, 0.0])

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[float | None] = []  # the proprio weight of every cost call

    def encode(self, frames, proprio):
        return MassState(proprio.float(), torch.zeros_like(proprio.float()))

    def advance(self, state, action, frames, proprio):
        return MassState(proprio.float(), dynamics(state.p, state.v, action)[1])

    def cost(self, state, goal, proprio_weight=None):
        self.weights.append(proprio_weight)
        weight = 1.0 if proprio_weight is None else proprio_weight
        visual = (state.p + self.BIAS - goal.p).pow(2).sum(1)
        return visual + weight * (state.p - goal.p).pow(2).sum(1)


def final_error(config, goal=(0.7, 0.4), budget: int = 20) -> tuple[float, list]:
    """How far MPC over :class:`ProprioMass` leaves the mass from ``goal``, and the proprio
    weights its plans used, one per plan (in order)."""
    model, env = ProprioMass(), PointMassEnv()
    frame = env.reset([0.5, 0.5])
    policy = PlannerPolicy(model, config, draw(np.array(goal)), seed=0, budget=budget,
                           goal_proprio=np.array(goal))  # fmt: skip
    for _ in range(budget):
        policy.observe_info({"proprio": env.p})
        frame = env.step(policy.act(frame))
    per_plan = [model.weights[i] for i in range(0, len(model.weights), config.iterations)]
    return float(np.linalg.norm(env.p - goal)), per_plan


def test_the_last_plans_weigh_the_goals_proprioception_and_place_the_agent_exactly():
    config = planner_preset("cpu", horizon=6, samples=64, elites=8, iterations=6)
    plain, weights = final_error(config)
    assert weights == [None] * 20  # the model's own weight throughout
    # The imprecise visual term and the proprio term of weight 1 meet halfway: 0.03 off.
    assert 0.02 < plain < 0.04
    final = dataclasses.replace(config, final_steps=3, final_proprio_weight=30.0)
    exact, weights = final_error(final)
    assert weights == [None] * 17 + [30.0] * 3  # the last 3 model steps' plans
    assert exact < 0.01 < plain
    with pytest.raises(DreamgymError, match="final_steps 3 needs a world model that reads"):
        Planner(PointMass(), final)
    with pytest.raises(DreamgymError, match="planner final_steps must be an integer >= 0"):
        planner_preset("cpu", final_steps=-1)


@pytest.mark.slow
def test_a_tiny_trained_model_plans_better_than_random():
    model = LearnedPointMass(seed=0)
    assert model.loss < 5e-4  # it learnt the dynamics (RMSE ~0.01; the walls clamp)
    rng = np.random.default_rng(1)
    config = planner_preset("cpu", horizon=8, samples=64, elites=8, iterations=6)
    reached = reach(model, rng.uniform(0.15, 0.85, (6, 2)), config, rng)
    assert reached["planner"] >= 5 and reached["planner"] > reached["random"], reached


def test_planner_settings_are_checked():
    with pytest.raises(DreamgymError, match="elites"):
        planner_preset("debug", elites=1000)
    with pytest.raises(DreamgymError, match="unknown planner preset 'fast'"):
        planner_preset("fast")
    with pytest.raises(DreamgymError, match="planner must be one of"):
        planner_preset("debug", method="mpc")
    with pytest.raises(DreamgymError, match="planner temperature must be"):
        planner_preset("debug", method="mppi", temperature=0.0)
    with pytest.raises(DreamgymError, match="goal cost"):
        Planner(type("NoCost", (), {})(), planner_preset("debug"))
    with pytest.raises(DreamgymError, match="planner energy must be one of"):
        planner_preset("debug", energy="l2")
    assert planner_preset("vjepa2-ac").energy == "l1"
    with pytest.raises(DreamgymError, match="energy 'l1' needs a world model"):
        Planner(PointMass(), planner_preset("vjepa2-ac"))


def test_plan_command_on_push_t_scores_planner_random_and_oracle(pusht_data, tmp_path, capsys):
    from dreamgym.cli import main
    from dreamgym.worldmodels.latent.train import train_latent

    model = tmp_path / "latent"
    train_latent(pusht_data, model, preset="debug", device="cpu", progress=False,
                 goal_offset=10, proprio=True, epochs=1)  # fmt: skip
    out = tmp_path / "plan"
    assert main(["plan", "--world-model", str(model), "--data", str(pusht_data), "--episodes",
                 "3", "--preset", "debug", "--goal-offset", "10", "--budget", "10",
                 "--proprio-weight", "5", "--videos", "1", "--out", str(out),
                 "--planner", "mppi", "--temperature", "0.2", "--energy", "l1",
                 "--ensemble", "2", "--final-steps", "1", "--final-proprio-weight", "20",
                 "--samples", "40", "--elites", "4", "--quiet"]) == 0  # fmt: skip
    report = json.loads((out / "plan.json").read_text())
    assert report["planner"]["proprio_weight"] == 5.0 and report["pairs"] == 3
    planner = report["planner"]
    assert (planner["method"], planner["temperature"], planner["energy"],
            planner["ensemble"], planner["final_steps"],
            planner["final_proprio_weight"], planner["samples"],
            planner["elites"]) == ("mppi", 0.2, "l1", 2, 1, 20.0, 40, 4)  # fmt: skip
    assert set(report["policies"]) == {"planner", "random", "oracle"}
    assert all(len(p["results"]) == 3 for p in report["policies"].values())
    # Replaying the recorded actions reaches the recorded goal: the protocol is sound.
    assert report["policies"]["oracle"]["successes"] == 3
    assert (out / "planner-0.mp4").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "planner: " in printed
    assert f"videos (agent | goal): {out / 'planner-0.mp4'}" in printed  # every file it wrote
