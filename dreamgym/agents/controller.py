"""C: the World Models linear controller, a = tanh(W x + b), with the paper's action mappings.

x is the world model's observation (``"zh"``: [z, h], the CarRacing controller's input; ``"zch"``:
[z, c, h], the original Doom controller's; ``"z"``: V only). The tanh outputs map to the real
env's actions as in the paper: CarRacing steering = a0, gas = (a1 + 1) / 2, brake = clip(a2, 0, 1);
any other Box maps [-1, 1] affinely onto its bounds (Doom's Box(1) in [-1, 1] unchanged; the env
then strafes below -1/3 and above +1/3). CarRacing at paper size: 288 x 3 + 3 = 867 parameters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from dreamgym._io import atomic_write_bytes, atomic_write_json
from dreamgym.errors import CorruptFileError, DreamgymError

CONTROLLER_KIND = "linear-controller"


@dataclass(frozen=True)
class ControllerSpec:
    """The shape of a controller.

    Attributes:
        env: the real env it acts in.
        input_size: length of the observation it reads.
        action_low, action_high: the real env's action bounds.
        observation_mode: which world-model observation it reads (``z``, ``zh``, ``zch``).
        bias: whether it has the bias b (the original Doom controller had none).
    """

    env: str
    input_size: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    observation_mode: str = "zh"
    bias: bool = True

    @property
    def action_size(self) -> int:
        return len(self.action_low)

    @property
    def num_params(self) -> int:
        return self.action_size * (self.input_size + int(self.bias))

    @classmethod
    def for_world_model(cls, model, observation_mode: str = "zh", bias: bool = True):
        """The controller shape that fits a loaded world model."""
        space = model.action_space
        return cls(model.env, model.observation_size(observation_mode),
                   tuple(float(x) for x in space.low), tuple(float(x) for x in space.high),
                   observation_mode, bias)  # fmt: skip


def unflatten(spec: ControllerSpec, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., num_params) flat vectors -> W (..., A, I) and b (..., A) (zeros without bias)."""
    a, i = spec.action_size, spec.input_size
    if params.shape[-1] != spec.num_params:
        raise DreamgymError(
            f"controller parameter vector has {params.shape[-1]} values; this controller "
            f"({spec.input_size} inputs -> {a} actions) has {spec.num_params}"
        )
    w = params[..., : a * i].reshape(*params.shape[:-1], a, i)
    b = params[..., a * i :] if spec.bias else torch.zeros(*params.shape[:-1], a).to(params)
    return w, b


def to_actions(spec: ControllerSpec, out: torch.Tensor) -> torch.Tensor:
    """Map tanh outputs in [-1, 1] (..., A) to the real env's actions (the paper's mappings)."""
    if spec.env == "carracing":
        return torch.stack([out[..., 0], (out[..., 1] + 1) / 2, out[..., 2].clamp(0, 1)], -1)
    low = torch.tensor(spec.action_low, device=out.device)
    high = torch.tensor(spec.action_high, device=out.device)
    return low + (out + 1) / 2 * (high - low)


def batched_actions(spec: ControllerSpec, params: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """Actions of N controllers for N observations in one batched op.

    Args:
        params: (N, num_params), one parameter vector per env (candidates repeated per rollout).
        obs: (N, input_size).
    """
    w, b = unflatten(spec, params)
    out = torch.tanh(torch.bmm(w, obs.unsqueeze(-1)).squeeze(-1) + b)
    return to_actions(spec, out)


class Controller:
    """One linear controller: a spec and a flat parameter vector (float32)."""

    def __init__(self, spec: ControllerSpec, params: np.ndarray | torch.Tensor | None = None):
        self.spec = spec
        self.params = torch.zeros(spec.num_params)
        if params is not None:
            self.set_params(params)

    def get_params(self) -> np.ndarray:
        return self.params.numpy().copy()

    def set_params(self, params: np.ndarray | torch.Tensor) -> None:
        params = torch.tensor(np.asarray(params, dtype=np.float32)).flatten()
        unflatten(self.spec, params)  # checks the size
        self.params = params

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions (N, A) for observations (N, input_size) (or (A,) for (input_size,))."""
        single = obs.dim() == 1
        obs = obs.reshape(-1, self.spec.input_size).float()
        params = self.params.to(obs.device).expand(len(obs), -1)
        actions = batched_actions(self.spec, params, obs)
        return actions[0] if single else actions

    def save(
        self,
        path: str | Path,
        world_model: str | Path | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``controller.json`` + ``controller.safetensors`` into directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path / "controller.safetensors", save({"params": self.params}))
        meta = {"kind": CONTROLLER_KIND, "spec": asdict(self.spec),
                "world_model": str(Path(world_model).resolve()) if world_model else None,
                **(extra or {})}  # fmt: skip
        atomic_write_json(path / "controller.json", meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> tuple[Controller, dict[str, Any]]:
        """A saved controller and its metadata from its directory (or its ``controller.json``)."""
        path = Path(path)
        root = path if path.is_dir() else path.parent
        meta_path = root / "controller.json"
        try:
            meta = json.loads(meta_path.read_text())
            spec_values = meta["spec"]
            spec = ControllerSpec(
                **{
                    **spec_values,
                    "action_low": tuple(spec_values["action_low"]),
                    "action_high": tuple(spec_values["action_high"]),
                }
            )
            params = load_file(str(root / "controller.safetensors"))["params"]
        except FileNotFoundError as exc:
            raise DreamgymError(f"controller file {exc.filename!r} does not exist") from None
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise CorruptFileError(f"controller in {str(root)!r} is unreadable: {exc}") from exc
        return cls(spec, params), meta

    def check_fits(self, model) -> None:
        """Raise DreamgymError when this controller cannot read ``model``'s observations."""
        expected = ControllerSpec.for_world_model(model, self.spec.observation_mode, self.spec.bias)
        if expected != self.spec:
            raise DreamgymError(
                f"controller does not fit the world model: controller is for {self.spec.env!r} "
                f"with {self.spec.input_size} inputs and {self.spec.action_size} actions, the "
                f"world model ({model.env!r}) gives {expected.input_size} inputs and "
                f"{expected.action_size} actions"
            )


class ControllerPolicy:
    """A controller acting in the real env: V encodes each frame, M tracks the memory h.

    Usable as a rollout-collection policy (``dreamgym collect --policy controller.json``, the
    paper's iterative training) and by the real-env evaluation backend.
    """

    def __init__(self, controller: Controller, world_model) -> None:
        controller.check_fits(world_model)
        self.controller = controller
        self.model = world_model
        self.state = None
        self.last_action: torch.Tensor | None = None

    def reset(self, seed: int) -> None:
        self.state = None

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        frame = torch.tensor(obs)[None]
        if self.state is None:
            self.state = self.model.encode(frame)
        else:
            self.state = self.model.advance(self.state, self.last_action, frame)
        x = self.model.observation(self.state, self.controller.spec.observation_mode)
        self.last_action = self.controller.act(x.cpu())
        return self.last_action[0].numpy().astype(np.float32)


def load_controller_policy(path: Path, meta: dict[str, Any]) -> ControllerPolicy:
    """The policy-file loader for ``kind: linear-controller`` (see rollouts.policies)."""
    from dreamgym import worldmodels

    controller, meta = Controller.load(path)
    if not meta.get("world_model"):
        raise DreamgymError(f"controller {str(path)!r} names no world model to read frames with")
    return ControllerPolicy(controller, worldmodels.load(meta["world_model"]))
