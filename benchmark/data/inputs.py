"""Model inputs of one or several parts: an array, or a dict of arrays sharing their first axis.

Most models take one array (frames or vectors). A model given a second input (``add_handcrafted``:
the combined network) takes ``{"frames": ..., "handcrafted": ...}``, the names of its Keras
``Input`` layers. These helpers let the code that slices, counts and joins inputs treat both
alike, so nothing else needs to know which it holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The name of each part of a two-part input.
FRAMES, HANDCRAFTED = "frames", "handcrafted"

Inputs = np.ndarray | dict[str, np.ndarray]


def count(x: Inputs) -> int:
    """The number of inputs (rows)."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take(x: Inputs, rows) -> Inputs:
    """The inputs at ``rows`` (an index array or a slice)."""
    return {name: part[rows] for name, part in x.items()} if isinstance(x, dict) else x[rows]


def concatenate(parts: Sequence[Inputs]) -> Inputs:
    """Inputs stacked along the first axis."""
    if isinstance(parts[0], dict):
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return np.concatenate(parts)


def as_float32(x: Inputs) -> Inputs:
    """The inputs as float32 (what the networks compute in)."""
    if isinstance(x, dict):
        return {name: np.asarray(part, dtype=np.float32) for name, part in x.items()}
    return np.asarray(x, dtype=np.float32)


def shape_of(x: Inputs):
    """One input's shape (without the first axis), or a dict of them."""
    if isinstance(x, dict):
        return {name: tuple(part.shape[1:]) for name, part in x.items()}
    return tuple(x.shape[1:])
