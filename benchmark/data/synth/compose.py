"""Composing a clip: the song's skeleton (tempo, groove, key, chords) and every part's notes.

Everything here is symbolic, on the sixteenth-note grid; :mod:`.render` turns it into sound.
The order of the random draws is part of the data set's definition: change it and every
clip changes (see ``FORMAT_VERSION``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from benchmark.data.synth.music import (
    SCALES,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    VELOCITIES,
    Chord,
    Groove,
    Hit,
    parse_pattern,
    parse_progression,
)
from benchmark.data.synth.recipes import Comp, Recipe

_BASS_REGISTER = 28  # E1: bass roots are placed in the octave above this
# Bass pattern letters: pitch above the chord root (T: the chord's third, 7: its seventh,
# A: a chromatic approach from a semitone below the next chord's root).
_BASS_PITCHES = {"R": 0, "2": 2, "F": 7, "6": 9, "O": 12}


class Note(NamedTuple):
    """A note or chord of a pitched part, on the sixteenth-note grid."""

    step: int
    length: int  # in sixteenths
    midis: tuple[int, ...]
    velocity: float


@dataclass(frozen=True)
class Song:
    """The clip's musical skeleton, shared by all its parts."""

    groove: Groove
    tonic: int  # pitch class of the key
    chords: tuple[Chord, ...]
    chord_steps: int
    bars: int
    sample_rate: int
    n_samples: int
    humanize_s: float  # spread of the players' timing

    def chord_at(self, step: float) -> Chord:
        """The chord sounding at a step (the progression repeats for the whole song)."""
        return self.chords[int(step // self.chord_steps) % len(self.chords)]

    @property
    def steps(self) -> int:
        return self.bars * STEPS_PER_BAR

    @property
    def is_minor(self) -> bool:
        """Whether the tonic chord (if the progression has one) is minor."""
        return any(chord.root == 0 and chord.is_minor for chord in self.chords)


def pick(rng: np.random.Generator, options: Sequence):
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def compose_song(recipe: Recipe, rng: np.random.Generator, n_samples: int, sample_rate: int) -> Song:
    """Draw the clip's tempo, groove, progression and key from its recipe."""
    step_s = 60.0 / rng.uniform(*recipe.tempo_bpm) / STEPS_PER_BEAT
    groove = Groove(
        step_s=step_s,
        swing=rng.uniform(*recipe.swing),
        swing_steps=recipe.swing_steps,
        start_s=rng.uniform(0, STEPS_PER_BAR * step_s),
        rubato_s=rng.uniform(*recipe.rubato_s),
    )
    song_s = n_samples / sample_rate + groove.start_s + groove.rubato_s
    bars = math.ceil(song_s / (STEPS_PER_BAR * step_s)) + 1
    chords = parse_progression(pick(rng, recipe.progressions))
    chord_steps = int(pick(rng, recipe.chord_beats)) * STEPS_PER_BEAT
    tonic = int(rng.integers(12))
    humanize_s = recipe.humanize_ms / 1000
    return Song(groove, tonic, chords, chord_steps, bars, sample_rate, n_samples, humanize_s)
def _pattern_notes(pattern: str, bar: int) -> list[tuple[int, Hit]]:
    """(absolute step, hit) for one bar of a pattern that may span several bars."""
    bar_in_pattern = bar % max(1, len(pattern) // STEPS_PER_BAR)
    segment = pattern[bar_in_pattern * STEPS_PER_BAR : (bar_in_pattern + 1) * STEPS_PER_BAR]
    return [(bar * STEPS_PER_BAR + hit.step, hit) for hit in parse_pattern(segment)]


def drum_hits(recipe: Recipe, song: Song, rng: np.random.Generator) -> list[tuple[str, int, float]]:
    """(kit piece, step, velocity) for every drum hit of the clip."""
    pattern = pick(rng, recipe.drums)
    hits = []
    for bar in range(song.bars):
        fill = bar % 4 == 3 and rng.random() < recipe.fill_chance
        for piece, piece_pattern in pattern.items():
            for step, hit in _pattern_notes(piece_pattern, bar):
                if not (fill and piece == "snare" and step % STEPS_PER_BAR >= 12):
                    hits.append((piece, step, VELOCITIES[hit.symbol]))
        if fill:  # a snare roll into the next phrase, growing louder
            hits += [("snare", bar * STEPS_PER_BAR + 12 + i, 0.5 + 0.15 * i) for i in range(4)]
        if recipe.crash_bars and bar % recipe.crash_bars == 0:
            hits.append(("crash", bar * STEPS_PER_BAR, 0.7))
    return hits


def _bass_pitch(symbol: str, chord: Chord, next_chord: Chord) -> int:
    if symbol == "T":
        return chord.intervals[1]
    if symbol == "7":
        return chord.intervals[3] if len(chord.intervals) > 3 else 10
    if symbol == "A":
        return (next_chord.root - chord.root - 1) % 12
    return _BASS_PITCHES[symbol]


def bass_notes(recipe: Recipe, song: Song, rng: np.random.Generator) -> list[Note]:
    """The bass line: one of the recipe's patterns, now and then another, on the chord roots."""
    main, variation = pick(rng, recipe.bass_lines), pick(rng, recipe.bass_lines)
    notes = []
    for bar in range(song.bars):
        pattern = variation if rng.random() < 0.2 else main
        for step, hit in _pattern_notes(pattern, bar):
            chord = song.chord_at(step)
            next_chord = song.chord_at((step // song.chord_steps + 1) * song.chord_steps)
            root = _BASS_REGISTER + (song.tonic + chord.root - _BASS_REGISTER) % 12
            pitch = root + _bass_pitch(hit.symbol, chord, next_chord)
            notes.append(Note(step, hit.length, (pitch,), 0.85 + 0.15 * rng.random()))
    return notes


def _voicing(song: Song, chord: Chord, register: int) -> tuple[int, ...]:
    root = register - 6 + (song.tonic + chord.root - register + 6) % 12
    return tuple(root + interval for interval in chord.intervals)


def comp_notes(comp: Comp, song: Song, rng: np.random.Generator) -> list[Note]:
    """A chordal part: the comp's rhythm on every bar, each chord voiced near its register."""
    rhythm = pick(rng, comp.rhythms)
    notes = []
    for bar in range(song.bars):
        for i, (step, hit) in enumerate(_pattern_notes(rhythm, bar)):
            midis = _voicing(song, song.chord_at(step), comp.register)
            # A held chord stops at the next chord change.
            length = min(hit.length, song.chord_steps - step % song.chord_steps)
            if comp.arpeggio:
                midis = (midis[comp.arpeggio[i % len(comp.arpeggio)] % len(midis)],)
            notes.append(Note(step, length, midis, 0.75 + 0.25 * rng.random()))
    return notes


def lead_notes(recipe: Recipe, song: Song, rng: np.random.Generator, register: int = 72) -> list[Note]:
    """A melody over one pass of the progression, repeated (with small changes) for the clip.

    It walks the scale by small steps, lands on chord tones on strong beats and rests at
    the end of each two-bar phrase, which is roughly how a hummable tune behaves.
    """
    scale = SCALES[recipe.lead_scale or ("minor" if song.is_minor else "major")]
    pitches = np.array([register - 12 + octave * 12 + degree for octave in range(3) for degree in scale])
    cycle = max(song.chord_steps * len(song.chords), 2 * STEPS_PER_BAR)
    position = int(np.searchsorted(pitches, register))
    phrase = []
    for step in range(0, cycle, 2):
        strong = step % STEPS_PER_BEAT == 0
        if step % (2 * STEPS_PER_BAR) >= 28 or rng.random() > (0.75 if strong else 0.4):
            continue
        position = int(np.clip(position + pick(rng, (-2, -1, -1, 0, 1, 1, 2)), 0, len(pitches) - 1))
        if strong:  # strong beats settle on the nearest chord tone
            chord = song.chord_at(step)
            tones = {(song.tonic + chord.root + interval) % 12 for interval in chord.intervals}
            on_chord = [i for i, p in enumerate(pitches) if (p + song.tonic) % 12 in tones]
            position = min(on_chord, key=lambda i: abs(i - position), default=position)
        phrase.append((step, int(pitches[position]) + song.tonic))
    notes = []
    for start in range(0, song.steps, cycle):
        for i, (step, midi) in enumerate(phrase):
            following = phrase[i + 1][0] if i + 1 < len(phrase) else cycle
            varied = midi + (pick(rng, (-2, 2)) if rng.random() < 0.1 else 0)
            length = min(following - step, 2 * STEPS_PER_BEAT)
            notes.append(Note(start + step, length, (varied,), 0.8 + 0.2 * rng.random()))
    return notes
