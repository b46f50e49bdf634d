"""Convolutional recurrent network of Mhatre, "Music Genre Recognition" (Indiana University).

The 1D-CNN's three blocks, each with BatchNormalization after pooling, feed an LSTM(96, tanh)
that returns its whole sequence; Flatten, then a ReLU Dense(64).
"""

from __future__ import annotations

from keras import layers

from benchmark.models.blocks import (
    classifier,
    conv1d_blocks,
    dense_stack,
    spectrogram_input,
    spectrogram_sequence,
)
from benchmark.models.registry import register_model

DEFAULTS = {
    "filters": (16, 32, 64),
    "kernel_size": 3,
    "convs_per_block": 2,
    "pool_size": 2,
    "dropout": 0.2,
    "lstm_units": 96,
    "dense_units": 64,
    "conv_axis": "frequency",
}


@register_model("crnn", DEFAULTS)
def build(
    input_shape,
    n_classes,
    *,
    filters=(16, 32, 64),
    kernel_size=3,
    convs_per_block=2,
    pool_size=2,
    dropout=0.2,
    lstm_units=96,
    dense_units=64,
    conv_axis="frequency",
):
    """CRNN: three Conv1D blocks with batch norm, LSTM(96) over the sequence, Dense(64), softmax."""
    inputs = spectrogram_input(input_shape)
    x = spectrogram_sequence(inputs, conv_axis)
    x = conv1d_blocks(
        x,
        filters=filters,
        kernel_size=kernel_size,
        convs_per_block=convs_per_block,
        pool_size=pool_size,
        dropout=dropout,
        batch_norm=True,
    )
    x = layers.LSTM(int(lstm_units), activation="tanh", return_sequences=True, name="lstm")(x)
    x = layers.Flatten(name="flatten")(x)
    x = dense_stack(x, [dense_units])
    return classifier(inputs, x, n_classes, name="crnn")
