"""Registry-driven model tests: every registered network is checked with no new test code.

Backend-agnostic on purpose (Keras ops only): tox runs this file under TensorFlow, JAX and
PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from benchmark.errors import BenchmarkError  # noqa: E402
from benchmark.models import (  # noqa: E402
    create_estimator,
    create_model,
    get_model_spec,
    list_models,
    resolve_hyperparameters,
)

#: The registered Keras networks: what the builder, gradient and backend tests apply to.
NETWORKS = list_models(kind="network")
SMALL_INPUT = (48, 40)  # (bins, frames): big enough for every default stack, fast to train.
N_CLASSES = 4
PAPER_PARAMETERS = {
    "fcnn": 693_792_266,
    "cnn1d": 4_418_922,
    "cnn2d": 423_591_132,
    "crnn": 912_234,
}


def test_registry_holds_the_four_networks_of_the_study():
    assert set(PAPER_PARAMETERS) <= set(list_models())
    assert list_models("cnn*") == ["cnn1d", "cnn2d"]


def test_unknown_model_names_the_registered_ones():
    with pytest.raises(BenchmarkError, match="unknown model 'resnet'.*cnn1d, cnn2d, combined, crnn, fcnn"):
        create_model("resnet", SMALL_INPUT, N_CLASSES)


def test_unknown_or_mistyped_hyperparameters_are_rejected_by_name():
    with pytest.raises(BenchmarkError, match="unknown hyperparameter.*filterz"):
        resolve_hyperparameters("cnn2d", {"filterz": (4, 4)})
    with pytest.raises(BenchmarkError, match="'dropout' of model 'cnn1d' must be float"):
        resolve_hyperparameters("cnn1d", {"dropout": "high"})
    with pytest.raises(BenchmarkError, match="'filters'.*list of integers"):
        resolve_hyperparameters("cnn1d", {"filters": 16})


def test_none_hyperparameters_keep_the_defaults():
    assert resolve_hyperparameters("crnn", {"lstm_units": None})["lstm_units"] == 96


def test_too_small_input_is_a_clear_error():
    with pytest.raises(BenchmarkError, match="cannot be built for input shape"):
        create_model("cnn1d", (8, 8), N_CLASSES)


@pytest.mark.parametrize("name", NETWORKS)
def test_output_is_a_finite_probability_per_class(name):
    model = create_model(name, SMALL_INPUT, N_CLASSES)
    batch = np.random.default_rng(0).random((3, *SMALL_INPUT), dtype=np.float32)
    probabilities = keras.ops.convert_to_numpy(model(batch, training=False))
    assert probabilities.shape == (3, N_CLASSES)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", NETWORKS)
def test_every_trainable_weight_gets_a_gradient(name):
    # One Adam step moves every weight whose gradient is non-zero by about the learning rate,
    # whatever the gradient's size: a weight that stays put received no gradient.
    keras.utils.set_random_seed(0)
    model = create_model(name, SMALL_INPUT, N_CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.random((8, *SMALL_INPUT), dtype=np.float32)
    y = np.arange(8) % N_CLASSES
    before = [keras.ops.convert_to_numpy(weight).copy() for weight in model.trainable_weights]
    model.train_on_batch(x, y)
    frozen = [
        weight.path
        for weight, old in zip(model.trainable_weights, before, strict=True)
        if np.array_equal(keras.ops.convert_to_numpy(weight), old)
    ]
    assert model.trainable_weights and not frozen, f"no gradient reached {frozen}"


@pytest.mark.parametrize("name", ["cnn1d", "crnn"])
def test_conv_axis_time_slides_along_frames(name):
    frequency = create_model(name, (64, 200), N_CLASSES)
    time = create_model(name, (64, 200), N_CLASSES, conv_axis="time")
    # First Conv1D's kernel is (kernel, channels, filters): channels are frames, then bins.
    assert frequency.get_layer("block1_conv1").kernel.shape[1] == 200
    assert time.get_layer("block1_conv1").kernel.shape[1] == 64
    with pytest.raises(BenchmarkError, match="conv_axis"):
        create_model(name, (64, 200), N_CLASSES, conv_axis="diagonal")


def another_value(spec, default):
    """A value of a search-space entry other than ``default``: another choice, or a bound."""
    if spec["type"] == "categorical":
        choice = next(choice for choice in spec["choices"] if choice != default and list(choice if isinstance(
            choice, list) else [choice]) != list(default if isinstance(default, tuple) else [default]))
        return tuple(choice) if isinstance(choice, list) else choice
    value = spec["high"] if default != spec["high"] else spec["low"]
    return int(value) if spec["type"] == "int" else float(value)


@pytest.mark.parametrize("name", NETWORKS)
def test_every_searchable_hyperparameter_reaches_the_network(name):
    # Whatever a network calls its hyperparameters: each one tune may change, changed alone,
    # changes the built network (its layers' configuration), so none is silently ignored.
    spec = get_model_spec(name)
    default = create_model(name, (128, 96), N_CLASSES).to_json()
    searchable = [key for key in spec.defaults if key in spec.search_space]
    assert searchable, f"{name} has no searchable hyperparameter"
    for key in searchable:
        other = another_value(spec.search_space[key], spec.defaults[key])
        assert create_model(name, (128, 96), N_CLASSES, **{key: other}).to_json() != default, key


@pytest.mark.parametrize("name", sorted(PAPER_PARAMETERS))
def test_parameter_counts_at_the_papers_input_size(name):
    model = create_model(name, (1025, 1320), 10)
    assert model.count_params() == PAPER_PARAMETERS[name]
    keras.utils.clear_session(free_memory=True)


def test_combined_network_takes_frames_and_a_scaled_handcrafted_vector():
    # Runs on every backend (tox's matrix): two named inputs, and the vector branch standardised by
    # a Normalization layer adapted on the training vectors.
    from benchmark.models import create_estimator

    shapes = {"frames": SMALL_INPUT, "handcrafted": (7,)}
    keras.utils.set_random_seed(0)
    estimator = create_estimator("combined", shapes, N_CLASSES)
    assert estimator.kind == "combined"
    model = estimator.build()
    assert sorted(layer.name for layer in model.inputs) == ["frames", "handcrafted"]
    rng = np.random.default_rng(2)
    x = {"frames": rng.random((8, *SMALL_INPUT), dtype=np.float32),
         "handcrafted": (1000.0 * rng.random((8, 7))).astype(np.float32)}
    estimator.adapt(model, x)
    scale = model.get_layer("handcrafted_scale")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scale.mean).ravel(), x["handcrafted"].mean(axis=0),
                               rtol=1e-4)
    probabilities = estimator.predict_proba(x)
    assert probabilities.shape == (8, N_CLASSES) and np.all(np.isfinite(probabilities))
    with pytest.raises(BenchmarkError, match="combined.*takes 'frames' and 'handcrafted'"):
        create_model("combined", SMALL_INPUT, N_CLASSES)


def test_a_network_whose_softmax_saturates_at_the_start_still_learns_on_this_backend():
    # Inputs of a large scale saturate fcnn's softmax from the first batch: every clip's
    # probabilities are 0 or 1 to float32 precision. The cross-entropy of clipped
    # probabilities then has no gradient at all, and under JAX and PyTorch fcnn sat at chance
    # on every seed of the default run while TensorFlow (which finds the logits behind a
    # softmax by itself) learned. Training on the logits learns on every backend.
    from benchmark.models.network import compile_network

    keras.utils.set_random_seed(0)
    estimator = create_estimator("fcnn", SMALL_INPUT, N_CLASSES, units=64, n_layers=2)
    rng = np.random.default_rng(0)
    y = np.arange(64) % N_CLASSES
    x = rng.random((64, *SMALL_INPUT), dtype=np.float32)
    for genre in range(N_CLASSES):  # each class is loud in a band of its own
        x[y == genre, genre * 12:(genre + 1) * 12] += 4.0
    x *= 400.0
    start = estimator.native.predict(x, verbose=0)
    assert np.mean(start.max(axis=1) > 1 - 1e-6) > 0.9, "the inputs no longer saturate the softmax"
    trained = compile_network(estimator.native, 1e-3)
    trained.fit(x, y, epochs=8, batch_size=16, verbose=0)
    accuracy = np.mean(estimator.predict_proba(x).argmax(axis=1) == y)
    assert accuracy >= 0.75, f"training accuracy {accuracy:.2f}: fcnn did not learn (chance is 0.25)"


def test_a_saved_network_holds_its_weights_not_its_optimizer(tmp_path):
    # Adam keeps two slots per weight: saved with the network they would triple every run's
    # model file; predicting never reads them.
    # Keras alone (no harness config): tox runs this file with nothing but Keras and a backend.
    import zipfile

    from benchmark.models import load_estimator
    from benchmark.models.network import compile_network

    estimator = create_estimator("fcnn", SMALL_INPUT, N_CLASSES, units=64, n_layers=2)
    rng = np.random.default_rng(0)
    x, y = rng.random((16, *SMALL_INPUT), dtype=np.float32), np.arange(16) % N_CLASSES
    compile_network(estimator.native, 1e-2)
    estimator.native.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = estimator.save(tmp_path)

    weights_bytes = 4 * estimator.count_params()
    with zipfile.ZipFile(path) as archive:
        stored = sum(item.file_size for item in archive.infolist())
    assert weights_bytes < stored < 1.5 * weights_bytes
    np.testing.assert_allclose(load_estimator(path).predict_proba(x), estimator.predict_proba(x), rtol=1e-6)
    # The fitted network keeps its optimizer: saving did not take it away.
    assert estimator.native.optimizer is not None
