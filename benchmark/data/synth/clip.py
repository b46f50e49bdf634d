"""One clip as a pure function of its arguments, and the argument checks it shares with the writer."""

from __future__ import annotations

import math

import numpy as np

from benchmark.data.gtzan import GTZAN_GENRES, GTZAN_SAMPLE_RATE
from benchmark.data.synth.compose import compose_song
from benchmark.data.synth.recipes import RECIPES
from benchmark.data.synth.render import master, render_parts
from benchmark.errors import BenchmarkError


def check_genre(genre: str) -> None:
    """A BenchmarkError unless ``genre`` is one of the synthetic genres."""
    if genre not in RECIPES:
        raise BenchmarkError(f"unknown genre {genre!r}; the synthetic genres are {', '.join(GTZAN_GENRES)}")


def check_integer(name: str, value: object, minimum: int) -> None:
    """A BenchmarkError naming ``name`` unless ``value`` is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise BenchmarkError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_audio_arguments(seconds: float, sample_rate: int, seed: int) -> None:
    """A BenchmarkError naming the first bad one of a clip's length, sample rate and seed."""
    is_number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if not (is_number and math.isfinite(seconds) and seconds > 0):
        raise BenchmarkError(f"seconds must be a positive number, got {seconds!r}")
    check_integer("sample_rate", sample_rate, 1)
    check_integer("seed", seed, 0)


def synthesize_clip(genre: str, index: int, *, seconds: float = 30.0,
                    sample_rate: int = GTZAN_SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """One clip as float32 mono in [-1, 1], length ``round(seconds * sample_rate)``.

    A pure function of its arguments: the random generator is seeded from
    ``(seed, genre's index in GTZAN_GENRES, index)`` alone.
    """
    check_genre(genre)
    check_integer("index", index, 0)
    check_audio_arguments(seconds, sample_rate, seed)
    recipe = RECIPES[genre]
    rng = np.random.default_rng([seed, GTZAN_GENRES.index(genre), index])
    n_samples = max(1, round(seconds * sample_rate))
    song = compose_song(recipe, rng, n_samples, sample_rate)
    tracks = render_parts(recipe, song, rng)
    return master(recipe, rng, tracks, sample_rate)
