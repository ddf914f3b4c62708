"""Real environments adapted for world models: 64x64x3 uint8 frames, continuous actions.

>>> from dreamgym.envs import make_env
>>> env = make_env("carracing")            # or gym.make("Real-CarRacing-v0")
"""

from dreamgym.envs.registry import (
    PAPER,
    REAL_ENVS,
    PaperDefaults,
    RealEnvSpec,
    get_env_spec,
    list_envs,
    make_env,
    register_real_env,
    register_real_envs,
)

register_real_envs()

__all__ = [
    "PAPER",
    "REAL_ENVS",
    "PaperDefaults",
    "RealEnvSpec",
    "get_env_spec",
    "list_envs",
    "make_env",
    "register_real_env",
]
