"""Layer stacks shared by more than one architecture.

Keras is imported inside the functions that make layers: the registry imports this module
without building anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

CONV_AXES = ("frequency", "time")

#: The study's Conv1D front end, shared by cnn1d and crnn.
CONV1D_FRONT_DEFAULTS = {
    "filters": (16, 32, 64),
    "kernel_size": 3,
    "convs_per_block": 2,
    "pool_size": 2,
    "dropout": 0.2,
    "conv_axis": "frequency",
}

#: Its default search space (the training settings join it at registration).
CONV1D_FRONT_SPACE = {
    "filters": {"type": "categorical", "choices": [[8, 16, 32], [16, 32, 64], [32, 64, 128]]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "conv_axis": {"type": "categorical", "choices": ["frequency", "time"]},
}


def spectrogram_input(input_shape) -> keras.KerasTensor:
    """The network input: one spectrogram, (frequency bins, frames) by default."""
    from keras import layers

    return layers.Input(shape=tuple(int(size) for size in input_shape), name="spectrogram")


def spectrogram_sequence(inputs, conv_axis: str):
    """View a (bins, frames) spectrogram as the sequence a Conv1D/LSTM stack runs along.

    Keras' Conv1D treats axis 1 as the sequence and axis 2 as channels. The study fed
    (1025 bins, 1320 frames) directly, so its filters slide along *frequency* with the frames
    as channels; that stays the default. ``"time"`` transposes first so they slide along time,
    with the frequency bins as channels, as most later MIR work does.
    """
    from keras import layers

    if conv_axis not in CONV_AXES:
        raise ValueError(f"conv_axis must be one of {CONV_AXES}, not {conv_axis!r}")
    return inputs if conv_axis == "frequency" else layers.Permute((2, 1), name="time_major")(inputs)


def conv1d_front(inputs, *, conv_axis: str, batch_norm: bool, **blocks):
    """The spectrogram viewed along ``conv_axis``, through the study's Conv1D blocks."""
    return conv1d_blocks(spectrogram_sequence(inputs, conv_axis), batch_norm=batch_norm, **blocks)


def conv1d_blocks(
    x,
    *,
    filters: Sequence[int],
    kernel_size: int,
    convs_per_block: int,
    pool_size: int,
    dropout: float,
    batch_norm: bool,
):
    """The study's Conv1D blocks: [Conv1D x n, MaxPool1D, (BatchNorm), Dropout] per filter count."""
    from keras import layers

    for block, width in enumerate(filters, start=1):
        for conv in range(1, convs_per_block + 1):
            x = layers.Conv1D(
                int(width), int(kernel_size), activation="relu", name=f"block{block}_conv{conv}"
            )(x)
        x = layers.MaxPooling1D(int(pool_size), name=f"block{block}_pool")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"block{block}_norm")(x)
        x = layers.Dropout(float(dropout), name=f"block{block}_dropout")(x)
    return x


def conv2d_front(inputs, *, filters: Sequence[int], kernel_size: int, pool_size: int):
    """The study's 2D-CNN front: the spectrogram as a one-channel image, [Conv2D, MaxPool2D] per
    filter count, flattened."""
    from keras import layers

    x = layers.Reshape((*inputs.shape[1:], 1), name="as_image")(inputs)
    for stage, width in enumerate(filters, start=1):
        x = layers.Conv2D(int(width), int(kernel_size), activation="relu", name=f"conv{stage}")(x)
        x = layers.MaxPooling2D(int(pool_size), strides=int(pool_size), name=f"pool{stage}")(x)
    return layers.Flatten(name="flatten")(x)


def dense_stack(x, units: Sequence[int], *, dropout: float = 0.0, prefix: str = "dense"):
    """ReLU Dense layers of the given widths, each optionally followed by dropout."""
    from keras import layers

    for index, width in enumerate(units, start=1):
        x = layers.Dense(int(width), activation="relu", name=f"{prefix}{index}")(x)
        if dropout:
            x = layers.Dropout(float(dropout), name=f"{prefix}{index}_dropout")(x)
    return x


#: The layer of every network whose output is the genre logits, before the softmax
#: (:func:`genre_head`); :func:`benchmark.models.network.logits_view` trains on it.
LOGITS_LAYER = "genre_logits"


def genre_head(features, n_classes: int):
    """The softmax over genres every architecture ends in, as logits then a softmax of its own.

    Two layers, not ``Dense(activation="softmax")``, so that training can take its loss from
    the logits on every backend (:func:`benchmark.models.network.logits_view`). Keras's
    TensorFlow backend finds the logits behind a softmax by itself; JAX and PyTorch take the
    log of the clipped probabilities, whose gradient is zero once the softmax saturates, and a
    network that saturates early (fcnn on 41,376 inputs) then never learns.

    Under a mixed-precision policy both layers compute in float32 (as Keras's mixed-precision
    guide advises): a 16-bit softmax rounds small probabilities to 0 and the loss saturates.
    Under float32 their dtype is left unset, so a float32 network's saved config is unchanged.
    """
    import keras
    from keras import layers

    exact = {"dtype": "float32"} if keras.config.dtype_policy().name.startswith("mixed") else {}
    logits = layers.Dense(int(n_classes), name=LOGITS_LAYER, **exact)(features)
    return layers.Activation("softmax", name="genre", **exact)(logits)


def classifier(inputs, features, n_classes: int, name: str) -> keras.Model:
    """Close a network with the softmax over genres every architecture ends in (:func:`genre_head`)."""
    import keras

    return keras.Model(inputs, genre_head(features, n_classes), name=name)
