"""Rendering a composed song: each part's notes as sound, then the mix and its mastering.

Every part (drums, bass, chords, lead) is normalised on its own, so the mix levels, drawn
per clip within the recipe's ranges, alone decide the balance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from benchmark.data.synth.compose import Note, Song, bass_notes, comp_notes, drum_hits, lead_notes, pick
from benchmark.data.synth.recipes import RECIPES, Recipe
from benchmark.data.synth.voices import VOICES, add_at, filtered, noise, render_kit, render_tone

PEAK = 0.89  # output peak, about -1 dBFS: headroom so the int16 conversion never clips
#: Chance that a part (drums, bass, chords, melody) is played from a neighbouring genre's recipe:
#: the main knob for how hard the task is.
CROSSOVER_CHANCE = 0.15
#: Each part's level in the mix (dB, after normalising it), unless a recipe says otherwise.
_DEFAULT_LEVELS_DB = {"drums": (-2.0, 2.0), "bass": (-4.0, 0.0), "comp": (-3.0, 1.0), "lead": (-3.0, 1.0)}


def _onset(song: Song, step: float, jitter_s: float) -> int:
    return round((song.groove.seconds(step) + jitter_s) * song.sample_rate)


def _render_notes(song: Song, notes: Sequence[Note], voice_name: str, rng: np.random.Generator,
                  strum_s: float = 0.0) -> np.ndarray:
    track = np.zeros(song.n_samples, dtype=np.float32)
    voice = VOICES[voice_name]
    cache: dict[tuple, np.ndarray] = {}  # a clip repeats few distinct notes: render each once
    jitter = rng.normal(0.0, song.humanize_s, size=len(notes))
    strum = round(strum_s * song.sample_rate)
    for note, jitter_s in zip(notes, jitter):
        start = _onset(song, note.step, jitter_s)
        held = max(1, round(note.length * song.groove.step_s * song.sample_rate))
        # A strummed chord is its notes placed one after another, each rendered on its own.
        if strum:
            chords = [(i * strum, (midi,)) for i, midi in enumerate(note.midis)]
        else:
            chords = [(0, note.midis)]
        for delay, midis in chords:
            key = (midis, held)
            if key not in cache:
                cache[key] = render_tone(voice, midis, held, song.sample_rate)
            add_at(track, start + delay, cache[key], note.velocity)
    return track


def _render_drums(recipe: Recipe, song: Song, rng: np.random.Generator) -> np.ndarray:
    track = np.zeros(song.n_samples, dtype=np.float32)
    if not recipe.drums:
        return track  # classical
    kit = render_kit(rng, recipe.kit, song.sample_rate)
    hits = drum_hits(recipe, song, rng)
    jitter = rng.normal(0.0, song.humanize_s, size=len(hits))
    gains = rng.uniform(0.85, 1.0, size=len(hits))
    for (piece, step, velocity), jitter_s, gain in zip(hits, jitter, gains):
        add_at(track, _onset(song, step, jitter_s), kit[piece], velocity * gain)
    return track


def _render_bass(recipe: Recipe, song: Song, rng: np.random.Generator) -> np.ndarray:
    voice = pick(rng, recipe.bass_voices)
    return _render_notes(song, bass_notes(recipe, song, rng), voice, rng)


def _render_comps(recipe: Recipe, song: Song, rng: np.random.Generator) -> np.ndarray:
    """One or two of the genre's chordal parts, distorted as the genre (and clip) has it."""
    count = rng.integers(1, 3)
    comps = [recipe.comps[i] for i in rng.permutation(len(recipe.comps))[:count]]
    track = sum(
        _render_notes(song, comp_notes(comp, song, rng), comp.voice, rng, comp.strum_s) for comp in comps
    )
    drive = rng.uniform(*recipe.drive)
    if drive > 1.0:  # a fixed input level, so the drive alone sets how hard it clips
        track = recipe.clipper(_normalised(track) * np.float32(0.3), drive)
    return track


def _render_lead(recipe: Recipe, song: Song, rng: np.random.Generator) -> np.ndarray:
    if not recipe.leads or rng.random() >= recipe.lead_chance:
        return np.zeros(song.n_samples, dtype=np.float32)  # an instrumental
    voice = pick(rng, recipe.leads)
    return _render_notes(song, lead_notes(recipe, song, rng), voice, rng)


_PARTS = {"drums": _render_drums, "bass": _render_bass, "comp": _render_comps, "lead": _render_lead}


def render_parts(recipe: Recipe, song: Song, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each part of the song as a float32 track, by the names the mix levels use."""
    return {name: render(_part_recipe(recipe, rng), song, rng) for name, render in _PARTS.items()}


def _part_recipe(recipe: Recipe, rng: np.random.Generator) -> Recipe:
    """The recipe one part is played from: the clip's genre's, or now and then a related genre's.

    Genres borrow from each other (country rock, jazz rap, disco pop); letting a part cross
    over keeps the song's tempo, key and chords but blurs the class boundary, as in real data.
    """
    if recipe.neighbours and rng.random() < CROSSOVER_CHANCE:
        return RECIPES[pick(rng, recipe.neighbours)]
    return recipe


def _rms(track: np.ndarray) -> float:
    return math.sqrt(float(np.dot(track, track)) / len(track))


def _normalised(track: np.ndarray) -> np.ndarray:
    rms = _rms(track)
    return track / np.float32(rms) if rms > 1e-9 else track


def _swell(recipe: Recipe, rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """A slow loudness curve: random levels in dB every 2 s, smoothed and interpolated."""
    depth_db = rng.uniform(*recipe.swell_db)
    every = 2 * sample_rate
    points = np.arange(0, n_samples + every, every)
    gains_db = depth_db * (rng.random(len(points)) - 0.5)
    gains_db = np.convolve(np.pad(gains_db, 1, mode="edge"), np.ones(3) / 3, mode="valid")  # no jumps
    # Interpolating at a coarse hop and holding each value is ~10x cheaper than per sample,
    # and a gain that moves a fraction of a dB per 256 samples cannot be heard as steps.
    hop = 256
    coarse = np.interp(np.arange(0, n_samples, hop), points, 10 ** (gains_db / 20)).astype(np.float32)
    return np.repeat(coarse, hop)[:n_samples]


def _crackle(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Vinyl crackle: sparse clicks of random sign and size."""
    track = np.zeros(n_samples, dtype=np.float32)
    count = rng.poisson(8 * n_samples / sample_rate)
    clicks = rng.choice((-1.0, 1.0), size=count) * rng.uniform(5, 30, count)
    track[rng.integers(0, n_samples, size=count)] = clicks
    return track


def master(recipe: Recipe, rng: np.random.Generator, tracks: dict[str, np.ndarray],
           sample_rate: int) -> np.ndarray:
    """Mix the parts at the clip's levels, add its noise and bandwidth, and peak-normalise."""
    levels = {**_DEFAULT_LEVELS_DB, **recipe.levels_db}
    gains = {name: np.float32(10 ** (rng.uniform(*levels[name]) / 20)) for name in tracks}
    mix = sum(gains[name] * _normalised(track) for name, track in tracks.items())
    mix *= _swell(recipe, rng, len(mix), sample_rate)
    hiss = noise(rng, len(mix))
    if rng.random() < recipe.crackle:
        hiss += _crackle(rng, len(mix), sample_rate)
    mix += hiss * np.float32((_rms(mix) or 1.0) * 10 ** (rng.uniform(*recipe.noise_db) / 20))
    mix = filtered(mix, rng.uniform(*recipe.bandwidth_hz), "lowpass", sample_rate)
    peak = float(np.max(np.abs(mix))) or 1.0
    return mix * np.float32(PEAK / peak)
