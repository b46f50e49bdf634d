"""``[train] feed``: a network's inputs fed batch by batch (:class:`benchmark.models._feeding.BatchFeed`).

The feed is checked on its own (every row once an epoch, float32, a seeded order that changes
between epochs, dict inputs, memmaps read a batch at a time), then through a network: ``stream``
trains and predicts as the whole-array path does, never converting a whole split, and ``auto``
chooses by the size of the training inputs.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from benchmark.config import TrainConfig
from benchmark.models import network as network_module
from tests import helpers

CLASSES = helpers.TINY_CLASSES


def batch_feed():
    from benchmark.models._feeding import BatchFeed

    return BatchFeed


def epoch_rows(feed) -> list[np.ndarray]:
    """The row numbers of each batch of one pass over the feed (x holds each row's number)."""
    return [batch[0][:, 0].astype(int) for batch in (feed[i] for i in range(len(feed)))]


def numbered(rows: int, dtype=np.float16) -> np.ndarray:
    """Inputs whose first column is the row's number (exact in float16 below 2048)."""
    x = np.zeros((rows, 3), dtype=dtype)
    x[:, 0] = np.arange(rows)
    return x


def test_a_shuffled_feed_gives_every_row_once_a_pass_in_float32_batches():
    x, y = numbered(10), np.arange(10) % CLASSES
    feed = batch_feed()(x, y, 4, seed=7)
    assert len(feed) == 3
    for _ in range(3):  # a pass begins at batch 0
        batches = [feed[i] for i in range(len(feed))]
        assert [len(xb) for xb, _ in batches] == [4, 4, 2]  # the last, short batch is kept
        assert all(xb.dtype == np.float32 for xb, _ in batches)
        rows = np.concatenate([xb[:, 0].astype(int) for xb, _ in batches])
        assert sorted(rows) == list(range(10))
        for xb, yb in batches:  # labels travel with their rows
            np.testing.assert_array_equal(yb, xb[:, 0].astype(int) % CLASSES)
    assert feed.passes == 3


def test_the_order_repeats_for_a_seed_and_changes_between_passes():
    x, y = numbered(50), np.zeros(50, dtype=int)
    one, again, other = (batch_feed()(x, y, 8, seed=seed) for seed in (3, 3, 4))
    first = epoch_rows(one)
    assert all(np.all(np.diff(rows) > 0) for rows in first)  # read in increasing order within a batch
    assert [list(rows) for rows in first] == [list(rows) for rows in epoch_rows(again)]
    assert np.concatenate(first).tolist() != np.concatenate(epoch_rows(other)).tolist()
    second = epoch_rows(one)
    assert np.concatenate(second).tolist() != np.concatenate(first).tolist()
    assert np.concatenate(epoch_rows(again)).tolist() == np.concatenate(second).tolist()


def test_an_unseeded_feed_is_in_order_and_prediction_batches_hold_inputs_alone():
    feed = batch_feed()(numbered(10), None, 4)
    assert np.concatenate(epoch_rows(feed)).tolist() == list(range(10))
    assert all(len(feed[i]) == 1 for i in range(len(feed)))
    with pytest.raises(IndexError):
        feed[3]


def test_a_dict_input_is_fed_part_by_part_on_the_same_rows():
    frames = numbered(9)
    handcrafted = np.repeat(np.arange(9, dtype=np.float16)[:, None], 2, axis=1) * 2
    feed = batch_feed()({"frames": frames, "handcrafted": handcrafted}, np.arange(9), 4, seed=0)
    seen = []
    for i in range(len(feed)):
        x, y = feed[i]
        assert set(x) == {"frames", "handcrafted"}
        assert x["frames"].dtype == x["handcrafted"].dtype == np.float32
        rows = x["frames"][:, 0].astype(int)
        np.testing.assert_array_equal(x["handcrafted"][:, 0], 2 * rows)
        np.testing.assert_array_equal(y, rows)
        seen += rows.tolist()
    assert sorted(seen) == list(range(9))


class RowReads:
    """Inputs that only hand out rows: it records each read's row count, and converting it whole
    (``np.asarray``, which Keras's array adapter does) fails."""

    def __init__(self, array):
        self.array, self.reads = array, []
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self):
        return len(self.array)

    def __getitem__(self, rows):
        part = self.array[rows]
        self.reads.append(len(part))
        return part

    def __array__(self, *args, **kwargs):
        raise AssertionError("a whole split was converted")


def test_a_memmap_is_held_by_reference_and_read_a_batch_at_a_time(tmp_path):
    stored = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float16, shape=(20, 3))
    stored[:] = numbered(20)
    stored.flush()
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    feed = batch_feed()(x, np.zeros(20, dtype=int), 6, seed=1)
    assert feed.x is x  # a reference to the file-backed array, not a copy
    for _ in range(2):  # its pages are unmapped after each batch, and read again the next pass
        assert sorted(np.concatenate(epoch_rows(feed))) == list(range(20))
    # A copy-on-write memmap's own changes are kept (its pages are left mapped).
    changed = np.load(tmp_path / "x.npy", mmap_mode="c")
    changed[:, 0] += 100
    assert sorted(np.concatenate(epoch_rows(batch_feed()(changed, None, 6)))) == list(range(100, 120))
    reads = RowReads(x)
    feed = batch_feed()(reads, np.zeros(20, dtype=int), 6, seed=1)
    rows = np.concatenate(epoch_rows(feed))
    assert sorted(rows) == list(range(20))
    assert reads.reads == [6, 6, 6, 2]


# --- through a network ---------------------------------------------------------------------------

def tiny_data(seed: int = 0):
    return helpers.tiny_data(seed, train=40, valid=20, dtype="float16")


network = helpers.tiny_network


@pytest.fixture
def feeds(monkeypatch):
    """Every :class:`BatchFeed` a network makes, recorded, each with the batches asked of it."""
    from benchmark.models import _feeding

    made = []

    class RecordedFeed(_feeding.BatchFeed):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.asked = []
            made.append(self)

        def __getitem__(self, index):
            self.asked.append(index)
            return super().__getitem__(index)

    monkeypatch.setattr(_feeding, "BatchFeed", RecordedFeed)
    return made


def test_streaming_trains_without_converting_a_whole_split_and_predicts_as_memory_does(feeds):
    x_train, y_train, x_valid, y_valid = tiny_data()
    train, valid = RowReads(x_train), RowReads(x_valid)
    estimator = network()
    report = estimator.fit(train, y_train, valid, y_valid, seed=0,
                           training=TrainConfig(epochs=3, batch_size=16, learning_rate=0.01, feed="stream"))
    assert report.finite and report.epochs_run == 3
    assert {"loss", "val_loss", "val_accuracy"} <= set(report.history)
    shuffled, ordered = feeds[:2]
    assert (shuffled.seed, ordered.seed) == (0, None)
    # Keras asks for the batches in order, each pass from batch 0 (so under one order): three
    # epochs are three full passes, after TensorFlow's look at the first batches (a short pass).
    passes = np.split(np.array(shuffled.asked), np.flatnonzero(np.array(shuffled.asked) == 0)[1:])
    assert all(list(asked) == list(range(len(asked))) for asked in passes)
    full = [number for number, asked in enumerate(passes) if len(asked) == len(shuffled)]
    assert len(full) >= 3
    assert len({tuple(shuffled.order(number)) for number in full}) == len(full)
    assert max(train.reads) <= 16 and max(valid.reads) <= 16

    streamed = estimator.predict_proba(valid, batch_size=8)
    assert len(feeds) == 3 and feeds[2].y is None
    estimator.feed = "memory"
    whole = estimator.predict_proba(x_valid, batch_size=8)
    assert streamed.shape == (20, CLASSES)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_streaming_repeats_for_a_seed():
    data = tiny_data()
    training = TrainConfig(epochs=2, batch_size=16, learning_rate=0.01, feed="stream")
    first, second = network(), network()
    first.fit(*data, training=training, seed=4)
    second.fit(*data, training=training, seed=4)
    np.testing.assert_array_equal(first.predict_proba(data[2]), second.predict_proba(data[2]))


def test_streaming_feeds_a_two_input_network(feeds):
    from benchmark.models import create_estimator

    rng = np.random.default_rng(0)
    x = {"frames": rng.standard_normal((40, 16, 12)).astype("float16"),
         "handcrafted": rng.standard_normal((40, 5)).astype("float16")}
    y = rng.integers(0, CLASSES, 40)
    estimator = create_estimator("combined", {"frames": (16, 12), "handcrafted": (5,)}, CLASSES,
                                 filters=(2, 2), kernel_size=3, dense_units=8, handcrafted_units=(4,))
    report = estimator.fit(x, y, x, y, seed=0, training=TrainConfig(epochs=1, batch_size=16, feed="stream"))
    assert report.finite and feeds
    assert estimator.predict_proba(x).shape == (40, CLASSES)


def test_auto_streams_above_the_threshold_alone(monkeypatch, feeds, caplog):
    x_train, y_train, x_valid, y_valid = tiny_data()
    size = network_module.float32_bytes(x_train)
    assert size == 40 * 8 * 8 * 4
    monkeypatch.setattr(network_module, "STREAM_ABOVE_BYTES", size)
    assert network_module.chosen_feed("auto", x_train) == "memory"
    assert network_module.chosen_feed("auto", {"a": x_train, "b": x_valid}) == "stream"  # every part counts
    assert network_module.chosen_feed("stream", x_train) == "stream"
    training = TrainConfig(epochs=1, batch_size=16)
    assert training.feed == "auto"
    with caplog.at_level(logging.INFO, logger="benchmark.models.network"):
        network().fit(x_train, y_train, x_valid, y_valid, training=training, seed=0)
    assert not feeds and "inputs fed as whole arrays (feed auto" in caplog.text

    monkeypatch.setattr(network_module, "STREAM_ABOVE_BYTES", size - 1)
    assert network_module.chosen_feed("auto", x_train) == "stream"
    assert network_module.chosen_feed("memory", x_train) == "memory"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="benchmark.models.network"):
        network().fit(x_train, y_train, x_valid, y_valid, training=training, seed=0)
    assert len(feeds) == 2 and "inputs fed batch by batch (feed auto" in caplog.text
