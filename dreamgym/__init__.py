"""dreamgym: train reinforcement-learning agents inside learned world models ("dreams").

Importing the package registers its Gymnasium ids: the real environments as ``Real-*-v0`` and
the dreams as ``Dream-CarRacing-v0``, ``Dream-DoomTakeCover-v0`` and ``Dream-PushT-v0``.
"""

import os

# gym-pusht pulls in pygame, which greets on import; dreamgym's output stays its own.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from dreamgym.dreams.registration import register_dream, register_dreams
from dreamgym.envs import list_envs, make_env
from dreamgym.errors import DreamgymError

__version__ = "0.1.0"

register_dreams()

__all__ = ["DreamgymError", "__version__", "list_envs", "make_env", "register_dream"]
