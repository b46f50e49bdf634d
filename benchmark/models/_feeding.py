"""A network's inputs fed batch by batch (``[train] feed = "stream"``), never as whole arrays.

Keras's array adapter turns the arrays given to ``fit`` and ``predict`` into backend tensors
whole: a float32 copy of every split beside the float16 arrays (or file-backed memmaps) that
hold it, 5.4 GB for the study's 1,000 clips of 1025 x 1320. :class:`BatchFeed` reads only the
rows of the batch asked for and converts just those to float32, so what a network's inputs cost
in memory is a few batches, whatever the size of the split.

A module of its own because the feed subclasses ``keras.utils.PyDataset``: defining it imports
Keras. :mod:`benchmark.models.network` imports this module inside ``fit`` and ``predict_proba``
only, so the registry stays free of Keras (the leading ``_`` keeps the package's discovery from
importing it).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from benchmark.data import inputs
from benchmark.data.scratch import release_pages


class BatchFeed(keras.utils.PyDataset):
    """``(x[rows], y[rows])`` in float32, one batch at a time, from arrays, memmaps or a dict of them.

    With a ``seed`` the rows come in a random order, drawn anew for every pass over the batches
    from the seed and the pass's number alone, so a seed repeats its batches exactly; without
    one, in order (validation, prediction). The last batch may be short: every row is fed once
    a pass. Within a batch the rows are read in increasing order, so a memmap is read front to
    back. Without ``y`` a batch is ``(x,)``, which is what ``predict`` takes.

    A pass begins when batch 0 is asked for, not at ``on_epoch_end``: Keras's TensorFlow loop
    makes the next epoch's iterator, whose prefetching starts reading at once, before it calls
    ``on_epoch_end``, so an order switched there would change partway through some epochs. Keras
    asks for the batches in order (one worker, its own shuffling off); TensorFlow's first look
    at two batches, for their shapes, is a pass of its own.
    """

    def __init__(self, x: inputs.Inputs, y: np.ndarray | None = None, batch_size: int = 32, *,
                 seed: int | None = None):
        super().__init__()  # one worker: tf.data's prefetch already reads ahead of the network
        self.x, self.y = x, y  # references: the feed never copies a whole split
        self.batch_size = int(batch_size)
        self.seed = seed
        self.rows = inputs.count(x)
        #: Passes begun so far; the current one's row order.
        self.passes = 0
        self._order = self.order(0)

    def order(self, number: int) -> np.ndarray:
        """The row order of pass ``number`` (0-based)."""
        if self.seed is None:
            return np.arange(self.rows)
        return np.random.default_rng([int(self.seed), int(number)]).permutation(self.rows)

    def __len__(self) -> int:
        return math.ceil(self.rows / self.batch_size)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        if index == 0:
            self._order = self.order(self.passes)
            self.passes += 1
        rows = np.sort(self._order[index * self.batch_size:(index + 1) * self.batch_size])
        x = inputs.as_float32(inputs.take(self.x, rows))
        for part in self.x.values() if isinstance(self.x, dict) else [self.x]:
            release_pages(part)
        return (x,) if self.y is None else (x, np.asarray(self.y[rows]))
