"""Frame preprocessing shared by the real environments: crop, then resize to 64x64 RGB."""

from __future__ import annotations

import numpy as np
from PIL import Image

FRAME_SIZE = 64
FRAME_SHAPE = (FRAME_SIZE, FRAME_SIZE, 3)


def resize_frame(frame: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """Resize an (H, W, 3) uint8 frame to (size, size, 3) with antialiased bilinear filtering.

    Pillow's bilinear filter widens its support when downscaling, so this averages over the
    source pixels like an area resize and is deterministic across platforms.
    """
    image = Image.fromarray(np.ascontiguousarray(frame))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
