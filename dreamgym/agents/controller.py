"""C: the World Models linear controller, a = tanh(W x + b), with the paper's action mappings.

x is the world model's observation (``"zh"``: [z, h], the CarRacing controller's input; ``"zch"``:
[z, c, h], the original Doom controller's; ``"z"``: V only). The tanh outputs map to the real
env's actions as in the paper: CarRacing steering = a0, gas = (a1 + 1) / 2, brake = clip(a2, 0, 1);
any other Box maps [-1, 1] affinely onto its bounds (Doom's Box(1) in [-1, 1] unchanged; the env
then strafes below -1/3 and above +1/3). CarRacing at paper size: 288 x 3 + 3 = 867 parameters.
Collecting data with a controller (the paper's iterative training) can add Gaussian exploration
noise to the tanh outputs (:func:`controller_policy`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from dreamgym.common import validate
from dreamgym.common.io import atomic_write_bytes, atomic_write_json
from dreamgym.common.pretrained import pretrained_name, resolve_controller
from dreamgym.dreams.agent import WorldModelPolicy
from dreamgym.envs import get_env_spec
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.worldmodels.protocol import check_feature_mode

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
    def for_world_model(cls, model, observation_mode: str | None = None, bias: bool = True):
        """The controller shape that fits a loaded world model, reading its feature vector
        ``observation_mode`` (default: the model's default)."""
        space = model.action_space
        real = len(model.info.get("action_low", space.low))
        if space.shape[0] != real:
            raise DreamgymError(
                f"this world model steps on blocks of {space.shape[0] // real} real actions "
                f"(frameskip), a controller acts on one real step; train the model with "
                "--frameskip 1 to evolve controllers in it"
            )
        observation_mode = check_feature_mode(model, observation_mode)
        return cls(model.env, model.feature_size(observation_mode),
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
    mapping = get_env_spec(spec.env).controller_actions
    if mapping is not None:
        return mapping(out)
    low, high = _bounds(spec.action_low, spec.action_high, out.device)
    return low + (out + 1) / 2 * (high - low)


@functools.lru_cache(maxsize=16)
def _bounds(low: tuple[float, ...], high: tuple[float, ...], device: torch.device):
    # Made once per device: a host-to-device copy on every step would stall a GPU dream.
    return torch.tensor(low, device=device), torch.tensor(high, device=device)


def batched_outputs(spec: ControllerSpec, params: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """The tanh outputs in [-1, 1] (N, A) of N controllers for N observations in one batched op.

    Args:
        params: (N, num_params), one parameter vector per env (candidates repeated per rollout).
        obs: (N, input_size).
    """
    w, b = unflatten(spec, params)
    return torch.tanh(torch.bmm(w, obs.unsqueeze(-1)).squeeze(-1) + b)


def batched_actions(spec: ControllerSpec, params: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """Actions of N controllers for N observations: :func:`batched_outputs` through
    :func:`to_actions`."""
    return to_actions(spec, batched_outputs(spec, params, obs))


class Controller:
    """One linear controller: a spec and a flat parameter vector (float32)."""

    def __init__(self, spec: ControllerSpec, params: np.ndarray | torch.Tensor | None = None):
        self.spec = spec
        self.params = torch.zeros(spec.num_params)
        if params is not None:
            self.set_params(params)

    @property
    def observation_mode(self) -> str:
        """Which of the world model's observations it reads (a :class:`DreamAgent`)."""
        return self.spec.observation_mode

    def get_params(self) -> np.ndarray:
        return self.params.numpy().copy()

    def set_params(self, params: np.ndarray | torch.Tensor) -> None:
        params = torch.tensor(np.asarray(params, dtype=np.float32)).flatten()
        unflatten(self.spec, params)  # checks the size
        self.params = params

    def outputs(self, obs: torch.Tensor) -> torch.Tensor:
        """tanh outputs in [-1, 1] (N, A) for observations (N, input_size) (or (A,) for
        (input_size,)), before they map to actions."""
        single = obs.dim() == 1
        obs = obs.reshape(-1, self.spec.input_size).float()
        params = self.params.to(obs.device).expand(len(obs), -1)
        out = batched_outputs(self.spec, params, obs)
        return out[0] if single else out

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions (N, A) for observations (N, input_size) (or (A,) for (input_size,))."""
        return to_actions(self.spec, self.outputs(obs))

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
        """A saved controller and its metadata from its directory (or its ``controller.json``,
        or ``pretrained:NAME``). A relative ``world_model`` in the metadata is resolved against
        the controller's directory (exported controllers sit next to their bundle)."""
        path = resolve_controller(path)
        if not path.exists():
            raise DreamgymError(
                f"controller {str(path)!r} does not exist (a directory holding controller.json "
                "and controller.safetensors, such as an evolution run's mean/ or best/)"
            )
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
        bundle = meta.get("world_model")
        if isinstance(bundle, str) and pretrained_name(bundle) is None:
            meta["world_model"] = str((root / bundle).resolve())
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


class ControllerPolicy(WorldModelPolicy):
    """A controller acting in the real env: V encodes each frame, M tracks the memory h.

    Usable as a rollout-collection policy (``dreamgym collect --policy controller.json``, the
    paper's iterative training) and by the real-env evaluation backend. Picklable (Ray ships it
    to the collection workers).

    Args:
        controller: the controller; it must fit ``world_model``'s observations.
        world_model: the world model it was trained for.
        noise: standard deviation of Gaussian exploration noise added to the controller's tanh
            outputs, which are then clipped to [-1, 1] and mapped to actions (so actions stay
            in bounds). The noise is drawn from a generator that :meth:`reset` seeds with the
            episode's seed, so collection stays reproducible. 0 acts exactly as the controller.
        label: how a collected dataset names this policy (``dataset.json``'s ``policy``); None
            names its class.

    Raises:
        DreamgymError: when the controller does not fit, or ``noise`` is negative or not finite.
    """

    def __init__(
        self, controller: Controller, world_model, noise: float = 0.0, label: str | None = None
    ) -> None:
        validate.real("policy noise", noise, 0.0)
        super().__init__(controller, world_model, label)
        self.controller = controller
        self.noise = float(noise)
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        super().reset(seed)
        # A noise stream separate from the env's, derived from the same episode seed.
        self.rng = np.random.default_rng([seed, 2])

    def decide(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.controller.outputs(obs)
        if self.noise > 0:
            eps = torch.from_numpy(self.rng.standard_normal(out.shape).astype(np.float32))
            out = (out + self.noise * eps).clamp(-1, 1)
        return to_actions(self.controller.spec, out)


def controller_policy(path: str | Path, noise: float = 0.0) -> ControllerPolicy:
    """A saved controller as a real-env policy, reading frames through the world model it was
    trained for, optionally with exploration noise (the paper's iterative training).

    Its label (the ``policy`` a collected dataset records) is the resolved ``path``, as
    ``dreamgym collect --policy PATH`` records it, followed by `` noise=SIGMA`` when noisy.

    Args:
        path: the controller's directory (or its ``controller.json``).
        noise: standard deviation of the exploration noise (see :class:`ControllerPolicy`).

    Raises:
        DreamgymError: when ``path`` holds no saved controller, the controller names no world
            model, or ``noise`` is negative.
    """
    from dreamgym import worldmodels

    path = resolve_controller(path)
    file = path / "controller.json" if path.is_dir() else path
    try:
        kind = json.loads(file.read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind != CONTROLLER_KIND:
        raise DreamgymError(
            f"{str(path)!r} is not a saved controller (a controller.json of kind "
            f"{CONTROLLER_KIND!r}, or its directory)"
        )
    controller, meta = Controller.load(file)
    if not meta.get("world_model"):
        raise DreamgymError(f"controller {str(path)!r} names no world model to read frames with")
    label = str(path.resolve()) + (f" noise={float(noise)!r}" if noise else "")
    return ControllerPolicy(controller, worldmodels.load(meta["world_model"]), noise, label)


def load_controller_policy(path: Path, meta: dict[str, Any]) -> ControllerPolicy:
    """The policy-file loader for ``kind: linear-controller`` (see rollouts.policies)."""
    return controller_policy(path)
