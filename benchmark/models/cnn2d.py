"""2D convolutional network of Mhatre, "Music Genre Recognition" (Indiana University).

The spectrogram becomes a one-channel image: two [Conv2D(10, 5x5, relu), MaxPool2D(2, stride 2)]
stages, Flatten, ReLU Dense(512). At (1025, 1320) the Dense layer holds 423.6 M parameters.
"""

from __future__ import annotations

from benchmark.models.blocks import classifier, conv2d_front, dense_stack, spectrogram_input
from benchmark.models.registry import register_model

DEFAULTS = {
    "filters": (10, 10),
    "kernel_size": 5,
    "pool_size": 2,
    "dense_units": 512,
    "dropout": 0.0,
}


# What `tune` searches unless the experiment file gives a [tuning.cnn2d] table.
SEARCH_SPACE = {
    "filters": {"type": "categorical", "choices": [[8, 8], [10, 10], [16, 16], [16, 32], [32, 32]]},
    "kernel_size": {"type": "int", "low": 3, "high": 7, "step": 2},
    "pool_size": {"type": "int", "low": 2, "high": 4},
    "dense_units": {"type": "categorical", "choices": [64, 128, 256, 512]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
}


@register_model("cnn2d", DEFAULTS, SEARCH_SPACE)
def build(input_shape, n_classes, *, filters, kernel_size, pool_size, dense_units, dropout):
    """2D-CNN: [Conv2D(10, 5x5), MaxPool2D(2)] x 2, Flatten, Dense(512), softmax."""
    inputs = spectrogram_input(input_shape)
    x = conv2d_front(inputs, filters=filters, kernel_size=kernel_size, pool_size=pool_size)
    x = dense_stack(x, [dense_units], dropout=dropout)
    return classifier(inputs, x, n_classes, name="cnn2d")
