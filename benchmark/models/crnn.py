"""Convolutional recurrent network of Mhatre, "Music Genre Recognition" (Indiana University).

The 1D-CNN's three blocks, each with BatchNormalization after pooling, feed an LSTM(96, tanh)
that returns its whole sequence; Flatten, then a ReLU Dense(64).
"""

from __future__ import annotations

from benchmark.models.blocks import (
    CONV1D_FRONT_DEFAULTS,
    CONV1D_FRONT_SPACE,
    classifier,
    conv1d_front,
    dense_stack,
    spectrogram_input,
)
from benchmark.models.registry import register_model

DEFAULTS = {**CONV1D_FRONT_DEFAULTS, "lstm_units": 96, "dense_units": 64}

# What `tune` searches unless the experiment file gives a [tuning.crnn] table.
SEARCH_SPACE = {
    **CONV1D_FRONT_SPACE,
    "lstm_units": {"type": "int", "low": 32, "high": 128, "step": 32},
    "dense_units": {"type": "categorical", "choices": [32, 64, 128]},
}


@register_model("crnn", DEFAULTS, SEARCH_SPACE)
def build(input_shape, n_classes, *, lstm_units, dense_units, **front):
    """CRNN: three Conv1D blocks with batch norm, LSTM(96) over the sequence, Dense(64), softmax."""
    from keras import layers

    inputs = spectrogram_input(input_shape)
    x = conv1d_front(inputs, batch_norm=True, **front)
    x = layers.LSTM(int(lstm_units), activation="tanh", return_sequences=True, name="lstm")(x)
    x = layers.Flatten(name="flatten")(x)
    x = dense_stack(x, [dense_units])
    return classifier(inputs, x, n_classes, name="crnn")
