"""Dreams: a trained world model as Gymnasium environments (single and batched).

>>> import gymnasium as gym, dreamgym
>>> env = gym.make("Dream-CarRacing-v0", world_model="runs/car", temperature=1.0)
>>> envs = gym.make_vec("Dream-CarRacing-v0", num_envs=1024,
...                     vectorization_mode="vector_entry_point", world_model="runs/car")
"""

from dreamgym.dreams.env import DreamEnv
from dreamgym.dreams.registration import register_dream
from dreamgym.dreams.vector import DreamVectorEnv
from dreamgym.worldmodels.bundle import dreamgym_home, find_bundle

__all__ = ["DreamEnv", "DreamVectorEnv", "dreamgym_home", "find_bundle", "register_dream"]
