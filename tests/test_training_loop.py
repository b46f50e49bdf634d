"""A network's training loop at the device's pace: nothing the harness adds reads a batch's logs,
an interrupt still stops training at the next batch, and a loss that becomes NaN or infinite
is found on the device and ends the run FAILED, naming the epoch and the batch.

Keras's callback list converts every batch's logs to Python floats on the main thread (a wait
for the device after every step) as soon as one callback overrides ``on_train_batch_end`` or
``on_batch_end`` (``keras/src/callbacks/callback_list.py``); under JAX it otherwise dispatches
the next step at once. The tiny network and data are :mod:`tests.helpers`'s.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

from benchmark import interrupts
from benchmark.cli import main
from benchmark.config import TrainConfig
from tests import helpers

#: A learning rate that makes Adam's first step ~1e30 per weight: the next batch overflows.
EXPLODING = 1e30
#: Batch-level hooks that make Keras bring every batch's logs to the host.
LOG_READING_HOOKS = ("on_batch_end", "on_train_batch_end")


def harness_callbacks():
    """The callbacks of a run's fit: the network's own and the MLflow epoch logger."""
    from benchmark import tracking
    from benchmark.models._keras_callbacks import EpochProgress, StopOnNonFinite

    return [EpochProgress("tiny", 1), StopOnNonFinite(), tracking.epoch_logger()]


def test_no_callback_of_the_harness_makes_keras_read_every_batchs_logs():
    import keras

    for callback in harness_callbacks():
        if getattr(callback, "async_safe", False):  # Keras may run its batch hooks off the main thread
            continue
        for hook in LOG_READING_HOOKS:
            assert getattr(type(callback), hook) is getattr(keras.callbacks.Callback, hook), (callback, hook)
    if helpers.running_backend() == "jax":  # a thread-safe backend: the logs go to a worker thread
        callbacks = keras.callbacks.CallbackList(harness_callbacks(), add_history=True, add_progbar=False)
        assert callbacks._async_train


def swallowing_a_signal(at: int):
    """A callback that, at batch ``at``, receives SIGINT inside code that swallows it (as a
    weak-reference callback or a ``__del__`` would), and records the batches begun."""
    import keras

    class Swallowing(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.begun: list[int] = []

        def on_train_batch_begin(self, batch, logs=None):
            self.begun.append(batch)
            if batch == at:
                try:
                    signal.raise_signal(signal.SIGINT)
                except interrupts.Interrupted:
                    pass  # swallowed: only the recorded signal is left

    return Swallowing()


def test_a_swallowed_interrupt_still_stops_training_at_the_next_batch():
    x_train, y_train, x_valid, y_valid = helpers.tiny_data(train=96)
    swallowing = swallowing_a_signal(at=2)
    training = TrainConfig(epochs=3, batch_size=8, learning_rate=1e-3)
    with interrupts.handled(), pytest.raises(interrupts.Interrupted):
        helpers.tiny_network().fit(x_train, y_train, x_valid, y_valid, training=training, seed=0,
                                   callbacks=[swallowing])
    assert swallowing.begun == [0, 1, 2]  # the harness's check ran before batch 3's step


def exploding_fit(**options):
    x_train, y_train, x_valid, y_valid = helpers.tiny_data()
    training = TrainConfig(epochs=3, batch_size=8, learning_rate=EXPLODING, **options)
    return helpers.tiny_network().fit(1e3 * x_train, y_train, x_valid, y_valid, training=training, seed=0)


@pytest.mark.skipif(helpers.running_backend() != "tensorflow",
                    reason="where Adam's exploding first step overflows into NaN (TensorFlow)")
@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_a_nan_loss_stops_training_after_its_epoch_and_names_the_batch(steps_per_execution):
    report = exploding_fit(steps_per_execution=steps_per_execution)
    assert not report.finite
    assert report.nonfinite_at == (1, 2)  # batch 1 is computed before the first update
    assert report.epochs_run == 1  # stopped: the next epochs never ran
    assert set(report.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}  # no bookkeeping
    assert np.isnan(report.history["loss"][0])


def test_the_record_of_the_first_nonfinite_batch_counts_batches_from_one():
    from benchmark.models._keras_callbacks import FirstNonFiniteBatch

    record = FirstNonFiniteBatch()
    for probabilities, first in (([0.5, 0.5], 0), ([0.2, 0.8], 0), ([np.nan, 1.0], 3), ([np.inf, 0.0], 3)):
        record.update_state(np.zeros(1), np.array([probabilities], dtype="float32"))
        assert int(record.result()) == first
    record.reset_state()
    assert int(record.result()) == 0


@pytest.mark.slow
@pytest.mark.skipif(helpers.running_backend() != "tensorflow",
                    reason="where Adam's exploding first step overflows into NaN (TensorFlow)")
def test_a_run_whose_loss_explodes_ends_failed_naming_the_epoch_and_batch(tmp_path, capsys):
    code = main(["run", "--model", "fcnn", "--experiment", "smoke", "--no-progress",
                 "--set", f"train.learning_rate={EXPLODING}"])
    assert code != 0
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: fcnn seed 0: the loss became NaN or infinite at epoch 1, batch 2;")
    client = helpers.client_for(helpers.store_uri(tmp_path))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.run_kind = 'train'")
    (run,) = runs
    assert run.info.status == "FAILED"
    assert "at epoch 1, batch 2; lower the learning rate" in run.data.tags["failure_reason"]
    assert "test_accuracy" not in run.data.metrics  # never scored
    assert "loss" in run.data.metrics and not [key for key in run.data.metrics if "nonfinite" in key]


def test_steps_per_execution_leaves_the_training_unchanged():
    data = helpers.tiny_data(train=50)  # 7 batches of 8: the last call runs a short remainder
    runs = []
    for steps in (1, 3):
        network = helpers.tiny_network()
        training = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-2, steps_per_execution=steps)
        report = network.fit(*data, training=training, seed=0)
        runs.append((report.history, [np.asarray(w) for w in network.native.get_weights()]))
    (history, weights), (history_3, weights_3) = runs
    assert history == history_3
    for one, three in zip(weights, weights_3, strict=True):
        np.testing.assert_array_equal(one, three)
