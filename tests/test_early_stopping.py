"""The options of networks' training: ``[train.early_stopping]``, ``train.mixed_precision``,
``train.jit_compile`` and ``train.feed``, for every network or per model (``[model.<name>]``).

The network tests train a small fully connected network on tiny random data, where what early
stopping must do is known from the training history itself: when it stops, which epoch is best,
and that the weights left in the network are that epoch's. One smoke run checks what MLflow
records; the config tests check the validation and a unit's settings.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.batch import config_hash, unit_settings
from benchmark.config import EarlyStopping, TrainConfig, load_experiment
from benchmark.errors import BenchmarkError
from benchmark.models.blocks import LOGITS_LAYER
from tests import helpers

tiny_data = helpers.tiny_data
network = helpers.tiny_network


def fit(data, *, seed: int = 0, epochs: int, **stopping):
    training = TrainConfig(epochs=epochs, batch_size=16, learning_rate=0.01,
                           early_stopping=EarlyStopping(**stopping))
    estimator = network()
    report = estimator.fit(*data, training=training, seed=seed)
    return estimator, report


def weights_of(estimator):
    return [np.asarray(w) for w in estimator.native.get_weights()]


def valid_accuracy(estimator, data) -> float:
    _, _, x_valid, y_valid = data
    return float(np.mean(estimator.predict_proba(x_valid).argmax(axis=1) == y_valid))


def assert_same_weights(left, right):
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_a_monitor_that_cannot_improve_stops_after_patience_and_keeps_the_first_epochs_weights():
    # min_delta 1.0 on val_accuracy: after the first epoch nothing can count as an improvement.
    data = tiny_data()
    stopped, report = fit(data, epochs=20, patience=2, monitor="val_accuracy", min_delta=1.0)
    assert report.epochs_run == 3 == len(report.history["val_accuracy"])
    assert report.best_epoch == 1
    assert report.stopped_epoch == 3
    # The network scored is the one after epoch 1: the same as training one epoch, same seed.
    one_epoch, plain = fit(data, epochs=1)
    assert plain.best_epoch is None and plain.stopped_epoch is None
    assert_same_weights(weights_of(stopped), weights_of(one_epoch))
    assert valid_accuracy(stopped, data) == pytest.approx(report.history["val_accuracy"][0])


def test_worsening_validation_loss_stops_training_at_the_epoch_the_history_says():
    data = tiny_data()
    patience, epochs = 2, 40
    estimator, report = fit(data, epochs=epochs, patience=patience, monitor="val_loss")
    val_loss = report.history["val_loss"]
    assert report.epochs_run == len(val_loss) < epochs  # it stopped early
    best = int(np.argmin(val_loss)) + 1  # 1-based
    assert report.best_epoch == best
    assert report.stopped_epoch == report.epochs_run == best + patience
    # Every epoch after the best was no improvement.
    assert all(value >= val_loss[best - 1] for value in val_loss[best:])
    # The weights left are the best epoch's, not the last one's.
    assert valid_accuracy(estimator, data) == pytest.approx(report.history["val_accuracy"][best - 1])
    exactly_best, _ = fit(data, epochs=best)
    assert_same_weights(weights_of(estimator), weights_of(exactly_best))


def test_start_from_epoch_ignores_the_first_epochs():
    data = tiny_data()
    _, report = fit(data, epochs=20, patience=1, monitor="val_accuracy", min_delta=1.0, start_from_epoch=3)
    # Epochs 1-3 are not monitored, epoch 4 is the first (so the best), epoch 5 fails to improve.
    assert (report.best_epoch, report.stopped_epoch, report.epochs_run) == (4, 5, 5)


def test_the_best_weights_are_kept_even_when_training_runs_every_epoch():
    data = tiny_data()
    estimator, report = fit(data, epochs=3, patience=10, monitor="val_accuracy", min_delta=1.0)
    assert report.epochs_run == 3
    assert report.best_epoch == 1
    assert report.stopped_epoch is None  # never stopped
    one_epoch, _ = fit(data, epochs=1)
    assert_same_weights(weights_of(estimator), weights_of(one_epoch))


def test_off_trains_every_epoch_and_reports_no_best_or_stopped_epoch():
    from benchmark.unit import RunResult, Unit

    data = tiny_data()
    estimator, report = fit(data, epochs=4, patience=0, monitor="val_accuracy", min_delta=1.0)
    assert report.epochs_run == 4
    assert report.best_epoch is None and report.stopped_epoch is None
    # The weights are the last epoch's.
    assert valid_accuracy(estimator, data) == pytest.approx(report.history["val_accuracy"][-1])
    metrics = RunResult(Unit("fcnn", 0, 0), None, estimator, report, None, None, None).metrics
    assert not {"best_epoch", "stopped_epoch", "best_val_accuracy"} & set(metrics)
    assert metrics["epochs_run"] == 4


def test_run_metrics_name_the_best_and_stopped_epochs():
    from benchmark.unit import RunResult, Unit

    data = tiny_data()
    estimator, report = fit(data, epochs=3, patience=10, monitor="val_accuracy", min_delta=1.0)
    metrics = RunResult(Unit("fcnn", 0, 0), None, estimator, report, None, None, None).metrics
    assert metrics["best_epoch"] == 1
    assert metrics["stopped_epoch"] == 3  # ran them all: the last epoch
    assert metrics["best_val_accuracy"] == report.history["val_accuracy"][0]
    assert metrics["final_val_accuracy"] == report.history["val_accuracy"][-1]


def test_mixed_precision_trains_and_leaves_the_global_policy_float32():
    import keras

    data = tiny_data()
    before = keras.config.dtype_policy().name
    assert before == "float32"
    training = TrainConfig(epochs=2, batch_size=16, learning_rate=0.001, mixed_precision=True)
    estimator = network()
    report = estimator.fit(*data, training=training, seed=0)
    assert report.finite and report.epochs_run == 2
    assert keras.config.dtype_policy().name == "float32"
    model = estimator.native
    assert any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers if layer.weights)
    # Master weights stay float32; predictions are probabilities.
    assert all(str(w.dtype) == "float32" for w in model.weights)
    probabilities = estimator.predict_proba(data[2])
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-2)
    # The next network, without mixed precision, is float32 throughout.
    _, _ = fit(data, epochs=1)
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize(("setting", "policy"), [("bfloat16", "mixed_bfloat16"), ("float16", "mixed_float16")])
def test_a_16_bit_policy_keeps_the_softmax_in_float32(setting, policy):
    estimator = network()
    training = TrainConfig(epochs=1, batch_size=16, learning_rate=0.001, mixed_precision=setting)
    report = estimator.fit(*tiny_data(), training=training, seed=0)
    assert report.finite
    layers = {layer.name: layer.dtype_policy.name for layer in estimator.native.layers if layer.weights}
    assert layers.pop(LOGITS_LAYER) == "float32"  # 16-bit probabilities round small ones to 0
    assert estimator.native.get_layer("genre").dtype_policy.name == "float32"  # the softmax
    assert set(layers.values()) == {policy}


def test_auto_precision_is_float32_on_a_cpu():
    from benchmark.models._precision import precision_policy

    assert precision_policy("auto") == "float32"  # these test machines have no accelerator
    assert (precision_policy(False), precision_policy(True)) == ("float32", "mixed_float16")


def test_the_policy_is_restored_when_building_fails(monkeypatch):
    import keras

    from benchmark.models.network import dtype_policy

    with pytest.raises(RuntimeError):
        with dtype_policy("mixed_float16"):
            assert keras.config.dtype_policy().name == "mixed_float16"
            raise RuntimeError("build failed")
    assert keras.config.dtype_policy().name == "float32"


# --- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize(("override", "key"), [
    ("train.early_stopping.patience=-1", "train.early_stopping.patience"),
    ("train.early_stopping.monitor=loss", "train.early_stopping.monitor"),
    ("train.early_stopping.monitor=val_f1", "train.early_stopping.monitor"),
    ("train.early_stopping.min_delta=-0.1", "train.early_stopping.min_delta"),
    ("train.early_stopping.start_from_epoch=-2", "train.early_stopping.start_from_epoch"),
    ("train.early_stopping.paitence=3", "train.early_stopping.paitence"),
    ("train.mixed_precision=maybe", "train.mixed_precision: should be false, 'float16', 'bfloat16' or 'auto' "
                                    "(true means 'float16'; got 'maybe')"),
    ("model.crnn.mixed_precision=16", "model.crnn.mixed_precision: should be false, 'float16'"),
    ("train.steps_per_execution=0", "train.steps_per_execution"),
    ("model.fcnn.steps_per_execution=true", "model.fcnn.steps_per_execution"),
    ("train.jit_compile=always", "train.jit_compile"),
    ("model.cnn2d.jit_compile=1", "model.cnn2d.jit_compile"),
    ("train.feed=streaming", "train.feed: should be 'auto', 'memory' or 'stream' (got 'streaming')"),
    ("train.feed=true", "train.feed: should be 'auto', 'memory' or 'stream' (got true)"),
    ("model.cnn2d.feed=1", "model.cnn2d.feed: should be 'auto', 'memory' or 'stream' (got 1)"),
    ("model.cnn2d.early_stopping.patience=-1", "model.cnn2d.early_stopping: patience"),
    ("model.cnn2d.early_stopping.paitence=3", "model.cnn2d.early_stopping: unknown key 'paitence'"),
])
def test_invalid_early_stopping_settings_name_the_key(override, key):
    with pytest.raises(BenchmarkError) as error:
        load_experiment("smoke", [override])
    assert key in str(error.value)
    assert "--set" in str(error.value)
    assert "\n" not in str(error.value)


def test_early_stopping_settings_load_from_overrides():
    config = load_experiment("smoke", ["train.early_stopping.patience=3", "train.early_stopping.monitor=val_accuracy",
                                       "train.early_stopping.min_delta=0.01", "train.mixed_precision=true"])
    stopping = config.training_for("cnn2d").early_stopping
    assert (stopping.patience, stopping.monitor, stopping.min_delta) == (3, "val_accuracy", 0.01)
    assert stopping.enabled
    assert config.training_for("cnn2d").mixed_precision is True  # read as float16
    assert not load_experiment("smoke").train.early_stopping.enabled
    for setting in ("float16", "bfloat16", "auto"):
        assert load_experiment("smoke", [f"train.mixed_precision={setting}"]).train.mixed_precision == setting


def test_bundled_experiments_turn_early_stopping_on_and_off_as_documented():
    default = load_experiment("default").train.early_stopping
    assert (default.patience, default.monitor, default.start_from_epoch) == (8, "val_accuracy", 10)
    kfold = load_experiment("kfold").train.early_stopping
    assert (kfold.patience, kfold.start_from_epoch) == (3, 4)
    assert not load_experiment("paper").train.early_stopping.enabled
    assert load_experiment("paper").train.mixed_precision is False


def test_unit_settings_leave_the_options_out_at_their_defaults():
    settings = unit_settings(load_experiment("smoke"), "cnn2d")
    train_keys = {key for key in settings if key.startswith("train.")}
    assert train_keys == {"train.epochs", "train.batch_size", "train.learning_rate"}
    # Written out at their defaults, they change nothing either (paper.toml writes them).
    explicit = load_experiment("smoke", ["train.early_stopping.patience=0", "train.mixed_precision=false",
                                         "train.feed=auto", "train.steps_per_execution=1"])
    assert unit_settings(explicit, "cnn2d") == settings


def test_unit_settings_include_the_options_when_set():
    base = unit_settings(load_experiment("smoke"), "cnn2d")
    stopping = unit_settings(load_experiment("smoke", ["train.early_stopping.patience=3"]), "cnn2d")
    assert stopping["train.early_stopping.patience"] == 3
    assert stopping["train.early_stopping.monitor"] == "val_loss"
    assert config_hash(stopping) != config_hash(base)
    assert {key: value for key, value in stopping.items() if not key.startswith("train.early_stopping.")} == base
    mixed = unit_settings(load_experiment("smoke", ["train.mixed_precision=true"]), "cnn2d")
    assert mixed["train.mixed_precision"] is True
    assert {key: value for key, value in mixed.items() if key != "train.mixed_precision"} == base
    bfloat16 = unit_settings(load_experiment("smoke", ["train.mixed_precision=bfloat16"]), "cnn2d")
    assert bfloat16["train.mixed_precision"] == "bfloat16"
    steps = unit_settings(load_experiment("smoke", ["train.steps_per_execution=4"]), "cnn2d")
    assert {key: value for key, value in steps.items() if key != "train.steps_per_execution"} == base
    assert steps["train.steps_per_execution"] == 4
    streamed = unit_settings(load_experiment("smoke", ["train.feed=stream"]), "cnn2d")
    assert streamed["train.feed"] == "stream"
    assert {key: value for key, value in streamed.items() if key != "train.feed"} == base


def test_a_model_table_overrides_the_options_for_that_model_alone():
    config = load_experiment("smoke", ["train.early_stopping.patience=3", "train.early_stopping.monitor=val_accuracy",
                                       "model.cnn2d.early_stopping.patience=5", "model.cnn2d.jit_compile=true",
                                       "model.crnn.mixed_precision=true", "model.crnn.feed=stream"])
    cnn2d, crnn, fcnn = (config.training_for(name) for name in ("cnn2d", "crnn", "fcnn"))
    # A model's early_stopping keys replace the experiment's, key by key.
    assert (cnn2d.early_stopping.patience, cnn2d.early_stopping.monitor) == (5, "val_accuracy")
    assert (fcnn.early_stopping.patience, fcnn.early_stopping.monitor) == (3, "val_accuracy")
    assert (cnn2d.jit_compile, crnn.jit_compile, fcnn.jit_compile) == (True, "auto", "auto")
    assert (crnn.mixed_precision, cnn2d.mixed_precision) == (True, False)
    assert (crnn.feed, cnn2d.feed, fcnn.feed) == ("stream", "auto", "auto")
    # They are part of that unit's settings (its key), and of no other unit's.
    base = load_experiment("smoke", ["train.early_stopping.patience=3", "train.early_stopping.monitor=val_accuracy"])
    assert unit_settings(config, "fcnn") == unit_settings(base, "fcnn")
    assert unit_settings(config, "cnn2d")["train.jit_compile"] is True
    assert unit_settings(config, "cnn2d")["train.early_stopping.patience"] == 5
    assert unit_settings(config, "crnn")["train.feed"] == "stream"
    assert "train.feed" not in unit_settings(config, "cnn2d")


def test_a_classical_model_table_rejects_the_epoch_training_options():
    for option in ("model.svm.jit_compile=true", "model.svm.early_stopping.patience=3", "model.svm.feed=stream"):
        with pytest.raises(BenchmarkError, match="model.svm: a classical model has no"):
            load_experiment("smoke", ["features.representation=handcrafted", "run.models=['svm']", option])


@pytest.mark.parametrize("jit_compile", [True, False])
def test_jit_compile_reaches_the_compiled_network_and_trains_the_same_network(jit_compile):
    data = tiny_data()
    training = TrainConfig(epochs=2, batch_size=16, learning_rate=0.01, jit_compile=jit_compile)
    estimator = network()
    report = estimator.fit(*data, training=training, seed=0)
    assert estimator.native.jit_compile is jit_compile
    assert report.epochs_run == 2 and report.finite
    reference = network()
    reference.fit(*data, training=TrainConfig(epochs=2, batch_size=16, learning_rate=0.01), seed=0)
    # XLA computes in another order: the same network, to float32 rounding.
    np.testing.assert_allclose(estimator.predict_proba(data[2]), reference.predict_proba(data[2]), atol=1e-4)


def test_the_default_experiment_compiles_the_fully_connected_network_alone():
    config = load_experiment("default")
    assert {name: config.training_for(name).jit_compile for name in ("fcnn", "cnn1d", "cnn2d", "crnn")} == {
        "fcnn": True, "cnn1d": "auto", "cnn2d": "auto", "crnn": "auto"}
    assert load_experiment("paper").training_for("fcnn").jit_compile == "auto"


def test_a_classical_learner_is_unaffected_by_the_epoch_training_options():
    base = ["features.representation=handcrafted"]
    plain = unit_settings(load_experiment("smoke", base), "svm")
    assert not any(key.startswith("train.") for key in plain)
    for option in ("train.early_stopping.patience=3", "train.mixed_precision=true", "train.feed=stream"):
        assert unit_settings(load_experiment("smoke", [*base, option]), "svm") == plain


def test_describe_shows_early_stopping():
    from benchmark.unit import model_setup

    on = model_setup(load_experiment("smoke", ["train.early_stopping.patience=3",
                                               "train.early_stopping.start_from_epoch=2"]), "cnn2d")
    assert "early_stopping=patience 3 on val_loss from epoch 2" in on.describe()
    assert on.training_settings["early_stopping"]["patience"] == 3  # describe() does not change it
    off = model_setup(load_experiment("smoke"), "cnn2d")
    assert "early_stopping=off" in off.describe()


# --- a tracked run -------------------------------------------------------------------------------

def test_a_run_logs_its_best_and_stopped_epochs(tmp_path):
    from benchmark.runner import run_experiment
    from tests.helpers import batch_runs, store_uri

    config = load_experiment("smoke", ["train.epochs=6", "train.early_stopping.patience=1",
                                       "train.early_stopping.monitor=val_accuracy",
                                       "train.early_stopping.min_delta=1.0",
                                       "model.fcnn.units=32", "model.fcnn.n_layers=1"])
    outcome = run_experiment(config, ["fcnn"], tracking_uri=store_uri(tmp_path), progress=False)
    client, runs = batch_runs(outcome)
    run = runs["fcnn"]
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert metrics["best_epoch"] == 1
    assert metrics["stopped_epoch"] == 2
    assert metrics["epochs_run"] == 2
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [point.step for point in history] == [0, 1]  # two epochs trained of six
    assert metrics["best_val_accuracy"] == pytest.approx(history[0].value)
    assert metrics["final_val_accuracy"] == pytest.approx(history[-1].value)
