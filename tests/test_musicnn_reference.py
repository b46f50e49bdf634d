"""The Keras 3 musicnn port against the original musicnn 0.1.0 (its TF1 graph and checkpoints).

Runs in tox's ``musicnn-reference`` environment (the musicnn wheel installed without its
dependencies, ``tf_keras``, ``TF_USE_LEGACY_KERAS=1``); skips elsewhere. Both networks get the
same float32 input batches: the port's log-mel windows of generated audio (always) and of the
shared real excerpts (where they are). The
original graph is built with musicnn's own ``models.define_model`` in a graph of its own (eager
execution stays on for Keras 3; ``musicnn.extractor`` is only imported in a subprocess, since it
turns eager execution off for its whole process), and restored from the package's checkpoint.

The preprocessing is compared separately: the original's ``batch_data`` casts the mel power to
float16 before ``log10(10000 x + 1)``; the port stays in float32. The test measures where they
differ: rounding wherever the float16 value is finite (the original's log10 is computed in float16
too: steps of 0.004 at the top of its range), and infinity wherever ``10000 x``, also float16,
passes 65504 (log-mel above 4.82; most GTZAN excerpts reach it, and the original then feeds ``inf``
to its network).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

musicnn = pytest.importorskip("musicnn", reason="the original musicnn is installed only in tox -e musicnn-reference")
tf = pytest.importorskip("tensorflow")

from benchmark.data.tracks import discover_tracks, load_audio  # noqa: E402
from benchmark.pretrained import weights as weights_module  # noqa: E402
from benchmark.pretrained.embed import log_mel, resample, windows  # noqa: E402
from benchmark.pretrained.musicnn import WINDOW_FRAMES, assign_checkpoint, build_musicnn  # noqa: E402

pytestmark = pytest.mark.skipif(os.environ.get("TF_USE_LEGACY_KERAS") != "1",
                                reason="the original graph needs tf_keras with TF_USE_LEGACY_KERAS=1")

OUTPUTS = ("taggram", "mean_pool", "max_pool", "penultimate")
TOLERANCE = 1e-4
PACKAGE_DIR = Path(musicnn.__file__).resolve().parent
#: The data's decode rate in the harness (GTZAN's): the port resamples from it to 16 kHz.
DATA_RATE = 22050
#: Where the original's float16 ``10000 * mel`` overflows: log10(65504 + 1), about 4.82.
OVERFLOW = float(np.log10(65505.0))


@pytest.fixture(scope="module")
def excerpt_paths() -> list[Path]:
    from tests.helpers import EXCERPTS

    if not EXCERPTS.is_dir():
        pytest.skip(f"real GTZAN excerpts not found at {EXCERPTS}")
    return [track.path for track in discover_tracks(EXCERPTS)]


@pytest.fixture(scope="module")
def port_batches(excerpt_paths) -> dict[str, np.ndarray]:
    """The port's float32 log-mel windows of every excerpt, as the harness computes them."""
    return {path.name: windows(log_mel(resample(load_audio(path, DATA_RATE), DATA_RATE))) for path in excerpt_paths}


def original_outputs(model: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The original musicnn graph's activations for ``batch``, restored from the package's checkpoint."""
    from musicnn import models

    graph = tf.Graph()
    with graph.as_default():
        with tf.name_scope("model"):  # as musicnn.extractor builds it
            x = tf.compat.v1.placeholder(tf.float32, [None, WINDOW_FRAMES, 96])
            is_training = tf.compat.v1.placeholder(tf.bool)
            y, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(x, is_training, model, 50)
            taggram = tf.nn.sigmoid(y)
        with tf.compat.v1.Session(graph=graph) as session:
            tf.compat.v1.train.Saver().restore(session, f"{PACKAGE_DIR / model}/")
            found = session.run([taggram, mean_pool, max_pool, penultimate],
                                feed_dict={x: batch, is_training: False})
    return dict(zip(OUTPUTS, found, strict=True))


@pytest.mark.parametrize("model", weights_module.MODELS)
def test_the_installed_checkpoints_are_the_pinned_ones(model):
    for name, digest in weights_module.CHECKPOINT_FILES[model].items():
        assert weights_module.file_sha256(PACKAGE_DIR / model / name) == digest


@pytest.fixture(scope="module")
def generated_batches() -> dict[str, np.ndarray]:
    """The port's windows of generated music-like audio (chords, a beat, noise): the parity check
    that runs wherever this environment does, real excerpts or not."""
    rng = np.random.default_rng(0)
    seconds = np.arange(int(8 * DATA_RATE)) / DATA_RATE
    batches = {}
    for index, root in enumerate((110.0, 164.8, 220.0)):
        chord = sum(np.sin(2 * np.pi * root * ratio * seconds) for ratio in (1.0, 1.25, 1.5))
        beat = (np.sin(2 * np.pi * 2.0 * seconds) > 0.95) * rng.normal(0, 1, seconds.size)
        audio = (0.2 * chord + 0.3 * beat + 0.02 * rng.normal(0, 1, seconds.size)).astype(np.float32)
        batches[f"generated-{index}"] = windows(log_mel(resample(audio, DATA_RATE)))
    return batches


@pytest.mark.parametrize("model", weights_module.MODELS)
def test_the_port_matches_the_original_on_generated_audio(model, generated_batches, tmp_path):
    check_parity(model, generated_batches, tmp_path)


@pytest.mark.parametrize("model", weights_module.MODELS)
def test_the_port_matches_the_original_on_the_real_excerpts(model, port_batches, tmp_path):
    check_parity(model, port_batches, tmp_path)


def check_parity(model: str, port_batches: dict[str, np.ndarray], tmp_path: Path) -> None:
    """The port and the original graph on the same float32 windows: every output within tolerance."""
    # The port loads the weights as the harness does: checkpoint -> .npz -> every layer by name
    # (assign_checkpoint fails on any variable without a layer, or a shape that differs).
    npz = tmp_path / f"{model}.npz"
    weights_module._convert(PACKAGE_DIR / model, npz)
    port = build_musicnn(WINDOW_FRAMES)
    assign_checkpoint(port, weights_module.load_weights(npz))
    batch = np.concatenate(list(port_batches.values())).astype(np.float32)
    expected = original_outputs(model, batch)
    found = {name: np.asarray(value) for name, value in port.predict(batch, batch_size=64, verbose=0).items()}
    differences = {name: float(np.max(np.abs(found[name] - expected[name]))) for name in OUTPUTS}
    relative = {name: float(np.max(np.abs(found[name] - expected[name]) / np.maximum(np.abs(expected[name]), 1.0)))
                for name in OUTPUTS}
    magnitude = {name: float(np.max(np.abs(expected[name]))) for name in OUTPUTS}
    print(f"\n{model}: {len(batch)} windows of {len(port_batches)} clips; max |port - original|: "
          f"{json.dumps(differences)}; relative to max(1, |original|): {json.dumps(relative)}; "
          f"largest |original|: {json.dumps(magnitude)}")
    for name in OUTPUTS:
        assert found[name].shape == expected[name].shape, name
        # Within 1e-4 absolutely, or relatively where an activation exceeds 1 (max_pool reaches 150:
        # float32 spacing there alone is 1.5e-5, and the two graphs sum their convolutions apart).
        assert relative[name] <= TOLERANCE, (name, differences[name], relative[name])


def test_the_float16_cast_of_the_original_preprocessing_is_the_only_difference(excerpt_paths, port_batches,
                                                                              tmp_path):
    # The original's batch_data, in a process of its own (importing musicnn.extractor turns eager
    # execution off for the whole process).
    out = tmp_path / "original.npz"
    script = (
        "import sys, numpy as np\n"
        "from musicnn.extractor import batch_data\n"
        "paths, out = sys.argv[1:-1], sys.argv[-1]\n"
        "np.savez(out, **{p.rsplit('/', 1)[-1]: batch_data(p, 187, 187)[0] for p in paths})\n"
    )
    subprocess.run([sys.executable, "-c", script, *map(str, excerpt_paths), str(out)], check=True,
                   capture_output=True, timeout=600)
    original = dict(np.load(out))
    rounding, overflowing, clips_overflowing = 0.0, 0, []
    for name, ours in port_batches.items():
        theirs = original[name].astype(np.float32)
        assert theirs.shape == ours.shape, name  # same windows, same frames
        finite = np.isfinite(theirs)
        gap = np.abs(theirs[finite] - ours[finite])
        rounding = max(rounding, float(np.max(gap, initial=0.0)))
        # The original's log10 is float16 too: one float16 step of its value, plus the earlier roundings.
        assert np.all(gap <= np.spacing(original[name][finite]).astype(np.float32) + 5e-4), name
        if not finite.all():
            overflowing += int((~finite).sum())
            clips_overflowing.append(name)
            # Infinite exactly where 10000 x, computed in float16 too, passes float16's largest value.
            assert np.all(ours[~finite] > OVERFLOW - 1e-3)
        assert np.all(ours[finite] < OVERFLOW + 1e-3)
        assert np.all(np.isfinite(ours))
    print(f"\npreprocessing: max |float32 - float16 original| where finite: {rounding:.2e}; "
          f"{overflowing} infinite values in {len(clips_overflowing)} excerpts {clips_overflowing}")
    assert rounding < 5e-3
