"""musicnn in Keras 3: the architecture of ``MSD_musicnn``/``MTT_musicnn`` and its TF1 weights.

Pons & Serra, "musicnn: pre-trained convolutional neural networks for music audio tagging"
(ISMIR 2019 LBD); Pons et al., "End-to-end learning for music audio tagging at scale" (ISMIR
2018). The layers follow ``musicnn/models.py`` of the 0.1.0 wheel (``build_musicnn``) exactly:

- input: (time, 96) log-mel frames (:mod:`benchmark.pretrained.embed`), batch-normalised;
- front end: two timbral blocks (7 x 38 and 7 x 67 filters over time x frequency, 204 each,
  the input zero-padded by 3 frames on each side) and three temporal blocks (128 x 1, 64 x 1,
  32 x 1 filters, 51 each, TF ``same`` padding: 63/64, 31/32, 15/16 frames), each ReLU, batch
  norm, then max-pooled over frequency: 561 features per frame;
- mid end: three 7-frame 1D convolutions of 64 filters (ReLU, batch norm), the 2nd and 3rd
  residual, every layer's output concatenated with the front end's: 753 per frame;
- back end: max and mean over time, interleaved as TF flattens their (753, 2) stack (1506),
  batch norm, dropout 0.5, dense 200 ReLU, batch norm (``penultimate``), dropout 0.5, dense 50
  (``logits``), sigmoid (``taggram``).

Every layer is a standard Keras layer named after the TF1 variable scope it takes its weights
from (``conv2d_5``, ``batch_normalization_9``, ``dense_1``), so loading is by name. Batch norm
epsilon is TF1's 0.001 (Keras' default too). Explicit zero padding replaces TF's ``same`` so
every backend pads alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from keras import layers, models

N_MELS = 96
#: 3 s at 16 kHz, hop 256: ``librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1``.
WINDOW_FRAMES = 187
N_TAGS = 50
#: The activations the port exposes (and the parity test checks), with their sizes.
OUTPUT_SIZES = {"taggram": N_TAGS, "mean_pool": 753, "max_pool": 753, "penultimate": 200}
BATCH_NORM_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
#: TF variable name suffix -> index into a Keras layer's weights.
_BATCH_NORM_ORDER = ("gamma", "beta", "moving_mean", "moving_variance")
_KERNEL_ORDER = ("kernel", "bias")
#: The TF1 variable scopes of ``tf.compat.v1.layers``, which the weight-holding layers are named after.
_SCOPE = re.compile(r"(conv2d|batch_normalization|dense)(_\d+)?")
#: The layers of the front end (the input normalisation and the five blocks): what ``freeze``
#: keeps fixed when fine-tuning.
FRONTEND_LAYERS = ("batch_normalization", *(f"conv2d_{i}" if i else "conv2d" for i in range(5)),
                   *(f"batch_normalization_{i}" for i in range(1, 6)))
MIDEND_LAYERS = ("conv2d_5", "conv2d_6", "conv2d_7", "batch_normalization_6", "batch_normalization_7",
                 "batch_normalization_8")


def _batch_norm(name: str):
    return layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, momentum=0.99, name=name)


def _pool_frequency(x, name: str):
    """Max over the frequency axis of (time, frequency, filters): (time, filters)."""
    width, filters = x.shape[2], x.shape[3]
    x = layers.MaxPooling2D(pool_size=(1, width), strides=(1, width), name=f"{name}_pool")(x)
    return layers.Reshape((-1, filters), name=f"{name}_squeeze")(x)


def _timbral_block(x, kernel_height: int, kernel_width: int, conv: str, norm: str):
    x = layers.Conv2D(204, (kernel_height, kernel_width), padding="valid", activation="relu", name=conv)(x)
    return _pool_frequency(_batch_norm(norm)(x), conv)


def _temporal_block(x, kernel_height: int, conv: str, norm: str):
    # TF "same" for an even kernel pads one frame more after than before.
    before, after = (kernel_height - 1) // 2, kernel_height // 2
    x = layers.ZeroPadding2D(((before, after), (0, 0)), name=f"{conv}_pad")(x)
    x = layers.Conv2D(51, (kernel_height, 1), padding="valid", activation="relu", name=conv)(x)
    return _pool_frequency(_batch_norm(norm)(x), conv)


def _midend_layer(x, conv: str, norm: str):
    x = layers.ZeroPadding1D(3, name=f"{conv}_pad")(x)
    x = layers.Conv1D(64, 7, padding="valid", activation="relu", name=conv)(x)
    return _batch_norm(norm)(x)


def musicnn_body(mel):
    """The musicnn graph on ``mel``, a (batch, time, 96) tensor: its named activations."""
    x = layers.Reshape((-1, N_MELS, 1), name="expand")(mel)
    x = _batch_norm("batch_normalization")(x)
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(x)
    front = [
        _timbral_block(padded, 7, int(0.4 * N_MELS), "conv2d", "batch_normalization_1"),
        _timbral_block(padded, 7, int(0.7 * N_MELS), "conv2d_1", "batch_normalization_2"),
        _temporal_block(x, 128, "conv2d_2", "batch_normalization_3"),
        _temporal_block(x, 64, "conv2d_3", "batch_normalization_4"),
        _temporal_block(x, 32, "conv2d_4", "batch_normalization_5"),
    ]
    frontend = layers.Concatenate(axis=-1, name="frontend")(front)
    cnn1 = _midend_layer(frontend, "conv2d_5", "batch_normalization_6")
    cnn2 = layers.Add(name="residual_2")([_midend_layer(cnn1, "conv2d_6", "batch_normalization_7"), cnn1])
    cnn3 = layers.Add(name="residual_3")([_midend_layer(cnn2, "conv2d_7", "batch_normalization_8"), cnn2])
    midend = layers.Concatenate(axis=-1, name="midend")([frontend, cnn1, cnn2, cnn3])
    max_pool = layers.GlobalMaxPooling1D(name="max_pool")(midend)
    mean_pool = layers.GlobalAveragePooling1D(name="mean_pool")(midend)
    # TF flattens the (753, 2) stack of [max, mean]: max_0, mean_0, max_1, mean_1, ...
    width = max_pool.shape[-1]
    stacked = layers.Concatenate(axis=-1, name="pool_stack")([
        layers.Reshape((width, 1), name="max_pool_column")(max_pool),
        layers.Reshape((width, 1), name="mean_pool_column")(mean_pool),
    ])
    x = layers.Flatten(name="pool_flat")(stacked)
    x = layers.Dropout(0.5, name="pool_dropout")(_batch_norm("batch_normalization_9")(x))
    x = layers.Dense(200, activation="relu", name="dense")(x)
    penultimate = _batch_norm("batch_normalization_10")(x)
    logits = layers.Dense(N_TAGS, name="dense_1")(layers.Dropout(0.5, name="penultimate_dropout")(penultimate))
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    return {"taggram": taggram, "mean_pool": mean_pool, "max_pool": max_pool, "penultimate": penultimate,
            "logits": logits}


def build_musicnn(frames: int | None = WINDOW_FRAMES, outputs=tuple(OUTPUT_SIZES)):
    """The musicnn network on (frames, 96) inputs (any length: ``None``), returning ``outputs`` by name."""
    mel = layers.Input(shape=(frames, N_MELS), name="mel")
    found = musicnn_body(mel)
    return models.Model(mel, {name: found[name] for name in outputs}, name="musicnn")


def checkpoint_layers(model) -> dict[str, object]:
    """The layers of ``model`` that hold checkpoint weights, by TF variable scope (their name)."""
    return {layer.name: layer for layer in model.layers if _SCOPE.fullmatch(layer.name)}


def assign_checkpoint(model, weights: Mapping[str, np.ndarray], *, unused: tuple[str, ...] = ()) -> None:
    """Load a checkpoint's variables (name -> array, as :mod:`.weights` stores them) by name.

    Every layer must find each of its weights, shapes must agree, and every network variable of
    the checkpoint must find a layer, except those starting with one of ``unused`` (a part the
    model leaves out on purpose): anything else is a ``ValueError`` naming the variables.
    """
    remaining = {name: value for name, value in weights.items() if not name.startswith(unused)}
    problems = []
    for scope, layer in checkpoint_layers(model).items():
        order = _BATCH_NORM_ORDER if isinstance(layer, layers.BatchNormalization) else _KERNEL_ORDER
        values = []
        for variable, target in zip(order, layer.weights, strict=True):
            name = f"{scope}/{variable}"
            if name not in remaining:
                problems.append(f"{name} missing from the checkpoint")
                continue
            value = remaining.pop(name)
            # TF1 writes a 1D convolution over (time, features) as a 2D one with one input channel.
            if isinstance(layer, layers.Conv1D) and variable == "kernel" and value.ndim == 4:
                value = value.reshape(value.shape[0], value.shape[1] * value.shape[2], value.shape[3])
            if tuple(value.shape) != tuple(target.shape):
                problems.append(f"{name} has shape {value.shape}, the layer {tuple(target.shape)}")
            values.append(value)
        if len(values) == len(layer.weights) and not problems:
            layer.set_weights(values)
    if remaining:
        problems.append(f"checkpoint variables with no layer: {', '.join(sorted(remaining))}")
    if problems:
        raise ValueError("musicnn checkpoint does not fit the port: " + "; ".join(problems))
