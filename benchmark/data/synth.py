"""A deterministic, synthetic, GTZAN-shaped data set: the harness's embedded default.

Every clip is a short piece of procedurally composed music: a drum pattern, a bass line,
chords and sometimes a melody, on a tempo, key, swing and mix drawn from the clip's own
random generator within its genre's :class:`Recipe`. Recipes share ingredients the way
real genres do (rock, pop and country all play a backbeat; rock and metal both distort
power chords), so the classes overlap: learnable, but not trivially.

A clip is a pure function of ``(seed, genre, index, seconds, sample_rate)``, so any subset
can be generated in any order, in parallel, and comes out byte-identical.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from benchmark.data.gtzan import GTZAN_GENRES, GTZAN_SAMPLE_RATE
from benchmark.data.synth_voices import (
    VOICES,
    Kit,
    add_at,
    filtered,
    hard_clip,
    noise,
    render_kit,
    render_tone,
    soft_clip,
)
from benchmark.errors import BenchmarkError

#: Bump whenever the audio a given set of parameters produces changes: old caches then
#: no longer match and are never mistaken for the new data set.
FORMAT_VERSION = 1
MARKER_NAME = "synth.json"
_PARTIAL_MARKER_NAME = ".synth-partial.json"
_TEMP_SUFFIX = ".tmp"  # not an audio suffix, so track discovery never picks up a stray temp file

STEPS_PER_BEAT = 4  # the grid is in sixteenth notes
STEPS_PER_BAR = 16
PEAK = 0.89  # output peak, about -1 dBFS: headroom so the int16 conversion never clips
#: Chance that a part (drums, bass, chords, melody) is played from a neighbouring genre's recipe:
#: the main knob for how hard the task is.
CROSSOVER_CHANCE = 0.15

# --- harmony ------------------------------------------------------------------------------------

_NUMERALS = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}
# Chord qualities by numeral suffix; upper-case numerals are major-based, lower-case minor-based.
_QUALITIES = {
    ("", True): (0, 4, 7),
    ("", False): (0, 3, 7),
    ("7", True): (0, 4, 7, 10),
    ("7", False): (0, 3, 7, 10),
    ("maj7", True): (0, 4, 7, 11),
    ("9", True): (0, 4, 10, 14),
    ("9", False): (0, 3, 10, 14),
    ("5", True): (0, 7, 12),
    ("5", False): (0, 7, 12),
}
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}


class Chord(NamedTuple):
    """A chord as its root's distance from the tonic and its intervals above that root."""

    root: int
    intervals: tuple[int, ...]

    @property
    def is_minor(self) -> bool:
        return 3 in self.intervals


def parse_progression(text: str) -> tuple[Chord, ...]:
    """Chords from roman numerals: ``"I V vi IV"``, ``"ii7 V7 Imaj7"``, ``"i5 bVI5 bVII5"``."""
    chords = []
    for symbol in text.split():
        match = re.fullmatch(r"(b?)([IViv]+)(.*)", symbol)
        if match is None:
            raise ValueError(f"bad chord symbol {symbol!r}")
        flat, numeral, suffix = match.groups()
        root = _NUMERALS[numeral.upper()] - (1 if flat else 0)
        chords.append(Chord(root % 12, _QUALITIES[suffix, numeral.isupper()]))
    return tuple(chords)


# --- rhythm -------------------------------------------------------------------------------------

# Pattern strings have one character per sixteenth: a hit's velocity, '-' to hold the previous
# note one more step, '.' for silence. Bass patterns use pitch letters instead (see _BASS_PITCHES).
_VELOCITIES = {"X": 1.0, "x": 0.8, "o": 0.55, "g": 0.3}


class Hit(NamedTuple):
    """One onset of a pattern string."""

    step: int  # sixteenth within the pattern
    length: int  # in sixteenths, counting the '-' that follow
    symbol: str


@lru_cache(maxsize=None)  # a handful of distinct strings, parsed once per bar otherwise
def parse_pattern(pattern: str) -> tuple[Hit, ...]:
    """The onsets of a pattern string with their lengths, e.g. ``"x-..x..."``."""
    hits = []
    for step, symbol in enumerate(pattern):
        if symbol in ".-":
            continue
        length = 1
        while step + length < len(pattern) and pattern[step + length] == "-":
            length += 1
        hits.append(Hit(step, length, symbol))
    return tuple(hits)


@dataclass(frozen=True)
class Groove:
    """Where sixteenth-note steps fall in time, with swing and (for classical) rubato."""

    step_s: float
    swing: float  # where the off-beat of a swing pair falls: 0.5 straight, 2/3 triplet shuffle
    swing_steps: int  # a swing pair's length in steps: 4 swings eighths, 2 swings sixteenths
    start_s: float  # the clip starts this far into the song, so bar lines fall anywhere
    rubato_s: float = 0.0
    rubato_period_s: float = 8.0

    def seconds(self, step: float) -> float:
        pair, within = divmod(step / self.swing_steps, 1.0)
        if within < 0.5:
            swung = 2 * within * self.swing
        else:
            swung = self.swing + (within - 0.5) * 2 * (1 - self.swing)
        t = (pair + swung) * self.swing_steps * self.step_s
        # Rubato: a slow wobble of the time axis, so phrases push and pull as players do.
        return t + self.rubato_s * math.sin(2 * math.pi * t / self.rubato_period_s) - self.start_s


# --- recipes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comp:
    """A chordal part: an instrument, rhythms to choose from, and how the chords are voiced."""

    voice: str
    rhythms: tuple[str, ...]
    register: int = 60  # MIDI note around which the chord is voiced
    strum_s: float = 0.0  # delay between successive strings of a strummed chord
    arpeggio: tuple[int, ...] = ()  # play one chord tone per onset in this order (e.g. Alberti)


@dataclass(frozen=True)
class Recipe:
    """A genre as ranges and choices; every clip draws its own values from them."""

    tempo_bpm: tuple[float, float]
    progressions: tuple[str, ...]
    drums: tuple[Mapping[str, str], ...]  # kit piece -> pattern, one bar (or two); () for none
    bass_lines: tuple[str, ...]
    bass_voices: tuple[str, ...]
    comps: tuple[Comp, ...]
    leads: tuple[str, ...] = ()
    lead_chance: float = 0.0
    lead_scale: str | None = None  # a key of SCALES; None: major or minor, as the tonic chord is
    chord_beats: tuple[int, ...] = (4,)
    swing: tuple[float, float] = (0.5, 0.52)
    swing_steps: int = 4
    kit: Kit = Kit()
    fill_chance: float = 0.3
    crash_bars: int = 8  # a crash cymbal opens every this many bars; 0: never
    drive: tuple[float, float] = (1.0, 1.0)  # distortion gain on the chord part; 1: clean
    clipper: Callable[[np.ndarray, float], np.ndarray] = soft_clip
    humanize_ms: float = 6.0
    rubato_s: tuple[float, float] = (0.0, 0.0)
    swell_db: tuple[float, float] = (1.0, 3.0)  # depth of slow loudness changes
    bandwidth_hz: tuple[float, float] = (5000.0, 10000.0)  # the recording's low-pass
    noise_db: tuple[float, float] = (-50.0, -30.0)  # relative to the music
    crackle: float = 0.0  # chance of vinyl crackle
    levels_db: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    neighbours: tuple[str, ...] = ()  # related genres whose parts a clip may borrow


_BACKBEAT = {"kick": "x.......x.......", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."}
_BACKBEAT_PUSH = {"kick": "x.....x.x.......", "snare": "....x.......x...", "hat": "xox.xox.xox.xox."}
_FOUR_ON_FLOOR = {
    "kick": "x...x...x...x...",
    "snare": "....x.......x...",
    "open_hat": "..x...x...x...x.",
}

RECIPES: dict[str, Recipe] = {
    "blues": Recipe(
        tempo_bpm=(70, 130),
        neighbours=('jazz', 'rock', 'country'),
        progressions=(
            "I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7",
            "I7 IV7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7",
            "i7 i7 i7 i7 iv7 iv7 i7 i7 bVI7 V7 i7 V7",
        ),
        drums=(
            {"kick": "x.......x.......", "snare": "....x.......x...", "hat": "x.o.x.o.x.o.x.o."},
            {"kick": "x.....o.x.......", "snare": "....x.......x...", "ride": "x.x.x.x.x.x.x.x."},
        ),
        bass_lines=("R-T-F-6-7-6-F-T-", "R---R-F-6---F---", "R---T---F---6---"),
        bass_voices=("bass", "upright_bass"),
        comps=(
            Comp("organ", ("x-----x-x-----x-", "x---------------"), 60),
            Comp("piano", ("..x...x...x...x.", "x-.x..x-.x..x-.."), 62),
            Comp("guitar", ("x-x-x-x-x-x-x-x-", "x---x---x---x---"), 52, strum_s=0.01),
        ),
        leads=("guitar", "sax", "organ"),
        lead_chance=0.6,
        lead_scale="blues",
        swing=(0.62, 0.7),
        drive=(1.0, 3.0),
        humanize_ms=10.0,
    ),
    "classical": Recipe(
        tempo_bpm=(60, 130),
        progressions=("I IV V I", "i iv V i", "I vi ii V", "I V vi iii IV I IV V", "i VI iv V"),
        drums=(),
        bass_lines=("R-------F-------", "R---------------", "R-------R-------"),
        bass_voices=("cello",),
        comps=(
            Comp("strings", ("x---------------", "x-------x-------"), 62),
            Comp("piano", ("xxxxxxxxxxxxxxxx", "x-x-x-x-x-x-x-x-"), 55, arpeggio=(0, 2, 1, 2)),
            Comp("brass", ("x-------x-------",), 60),
        ),
        leads=("violin", "flute", "piano"),
        lead_chance=0.8,
        chord_beats=(4, 8),
        humanize_ms=12.0,
        rubato_s=(0.05, 0.25),
        swell_db=(6.0, 16.0),
        noise_db=(-55.0, -35.0),
        levels_db={"bass": (-8.0, -2.0)},
    ),
    "country": Recipe(
        tempo_bpm=(90, 170),
        neighbours=('rock', 'pop', 'blues'),
        progressions=("I IV V I", "I I IV V", "I IV I V", "I V IV I"),
        drums=(
            {"kick": "x.......x.......", "snare": "g.g.x.g.g.g.x.g.", "hat": "....x.......x..."},
            {"kick": "x.......x.......", "rim": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},
            _BACKBEAT,
        ),
        bass_lines=("R-------F-------", "R---F---R---F---", "R---F---R---A---"),
        bass_voices=("bass",),
        comps=(
            Comp("steel_guitar", ("x-x-x-x-x-x-x-x-", "x---x-x-x---x-x-", "....x-......x-.."), 52, 0.012),
            Comp("piano", ("x---x---x---x---", "....x.......x..."), 64),
            Comp("guitar", ("x-x-x-x-x-x-x-x-",), 50, strum_s=0.008),
        ),
        leads=("violin", "steel_guitar"),
        lead_chance=0.5,
        lead_scale="major_pentatonic",
        chord_beats=(4, 8),
        swing=(0.5, 0.56),
        drive=(1.0, 2.0),
    ),
    "disco": Recipe(
        tempo_bpm=(110, 132),
        neighbours=('pop', 'hiphop'),
        progressions=("i7 iv7", "i7 IV7", "ii7 V7", "Imaj7 ii7"),
        drums=(
            {**_FOUR_ON_FLOOR, "hat": "x...x...x...x..."},
            {**_FOUR_ON_FLOOR, "snare": ".", "clap": "....x.......x...", "hat": "xoxoxoxoxoxoxoxo"},
        ),
        bass_lines=("R-O-R-O-R-O-R-O-", "R.O.R.O.R.O.F.O.", "ROR.O.R.ROR.O.F."),
        bass_voices=("synth_bass", "bass"),
        comps=(
            Comp("strings", ("x---------------", "x-------x-------"), 67),
            Comp("muted_guitar", ("xoxoxoxoxoxoxoxo", ".x.x.x.x.x.x.x.x"), 60),
            Comp("e_piano", ("..x-..x-..x-..x-",), 62),
            Comp("brass", ("....x.......x...", "x..x..x........."), 64),
        ),
        leads=("strings", "lead_synth"),
        lead_chance=0.4,
        chord_beats=(4, 8),
        humanize_ms=3.0,
    ),
    "hiphop": Recipe(
        tempo_bpm=(78, 100),
        neighbours=('reggae', 'disco', 'jazz'),
        progressions=("i7 bVImaj7", "i9 iv9", "i7 bVII", "i7 i7 bVI bVII"),
        drums=(
            {"kick": "x.........x.....", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},
            {"kick": "x......x..x.....", "snare": "....x..g....x...", "hat": "x.xxx.x.x.xxx.x."},
            {"kick": "x.....x...x..x..", "snare": "....x.......x...", "hat": "xxxxxxxxxxxxxxxx"},
        ),
        bass_lines=("R-------..R-----", "R-----R---..F---", "R---------R-----"),
        bass_voices=("sub_bass",),
        comps=(
            Comp("e_piano", ("x---------------", "x-----x-----x---"), 60),
            Comp("piano", ("x-------x-------",), 62),
            Comp("pad", ("x---------------",), 60),
        ),
        leads=("flute", "e_piano", "lead_synth"),
        lead_chance=0.3,
        lead_scale="minor_pentatonic",
        chord_beats=(4, 8),
        swing=(0.54, 0.64),
        swing_steps=2,
        kit=Kit(kick_hz=(40, 52), kick_decay_s=(0.3, 0.5), snare_decay_s=(0.08, 0.14)),
        fill_chance=0.05,
        crash_bars=0,
        bandwidth_hz=(2500.0, 6000.0),
        noise_db=(-40.0, -25.0),
        crackle=0.7,
        levels_db={"drums": (1.0, 4.0)},
    ),
    "jazz": Recipe(
        tempo_bpm=(100, 210),
        neighbours=('blues', 'hiphop'),
        progressions=("ii7 V7 Imaj7 VI7", "Imaj7 vi7 ii7 V7", "iii7 VI7 ii7 V7", "ii7 V9 Imaj7 Imaj7"),
        drums=(
            {"ride": "x...x.x.x...x.x.", "hat": "....x.......x...", "snare": "......g.......g.",
             "kick": "g.......g......."},
            {"ride": "x...x.x.x...x.x.", "hat": "....x.......x...", "snare": "...g......g....."},
        ),
        bass_lines=("R---T---F---A---", "R---F---6---A---", "R---2---T---A---", "R---O---F---A---"),
        bass_voices=("upright_bass",),
        comps=(
            Comp("piano", ("x.....x.........", "...x......x.....", "..x..x....x....x"), 62),
            Comp("e_piano", ("x-....x-....x...",), 60),
            Comp("guitar", ("x-..x-..x-..x-..",), 55),
        ),
        leads=("sax", "brass", "piano"),
        lead_chance=0.7,
        swing=(0.6, 0.7),
        kit=Kit(kick_hz=(55, 70), kick_decay_s=(0.12, 0.2), cymbal_decay_s=(1.5, 2.5)),
        fill_chance=0.1,
        humanize_ms=12.0,
        levels_db={"drums": (-6.0, -2.0)},
    ),
    "metal": Recipe(
        tempo_bpm=(100, 200),
        neighbours=('rock',),
        progressions=("i5 bVI5 bVII5 i5", "i5 bII5 i5 bVII5", "i5 i5 bVI5 bVII5", "i5 bIII5 bII5 i5"),
        drums=(
            {"kick": "xxxxxxxxxxxxxxxx", "snare": "....x.......x...", "ride": "x...x...x...x..."},
            {"kick": "x.xxx.xxx.xxx.xx", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},
            {"kick": "x.x.x.x.x.x.x.x.", "snare": ".x.x.x.x.x.x.x.x", "ride": "x.x.x.x.x.x.x.x."},
            {"kick": "xx..xx..xx..xx..", "snare": "........x.......", "hat": "x.x.x.x.x.x.x.x."},
        ),
        bass_lines=("RRRRRRRRRRRRRRRR", "R.RRR.RRR.RRR.RR", "R-R-R-R-R-R-R-R-"),
        bass_voices=("synth_bass", "bass"),
        comps=(
            Comp(
                "power_guitar",
                ("xxxxxxxxxxxxxxxx", "x.xxx.xxx.xxx.xx", "x-x-x-x-x-x-x-x-", "x-------x-------"),
                40,
            ),
        ),
        leads=("power_guitar",),
        lead_chance=0.2,
        lead_scale="minor",
        chord_beats=(4, 8),
        kit=Kit(kick_hz=(55, 70), kick_decay_s=(0.07, 0.14), kick_click=(0.5, 0.9),
                snare_decay_s=(0.08, 0.14)),
        drive=(5.0, 20.0),
        clipper=hard_clip,
        humanize_ms=3.0,
    ),
    "pop": Recipe(
        tempo_bpm=(90, 128),
        neighbours=('disco', 'rock', 'country'),
        progressions=("I V vi IV", "vi IV I V", "I vi IV V", "IV I V vi"),
        drums=(
            _BACKBEAT,
            {**_BACKBEAT_PUSH, "snare": ".", "clap": "....x.......x..."},
            {**_FOUR_ON_FLOOR, "hat": "x.x.x.x.x.x.x.x."},
        ),
        bass_lines=("R-R-R-R-R-R-R-R-", "R-----R-R---F---", "R---R---R-R-R---"),
        bass_voices=("bass", "synth_bass"),
        comps=(
            Comp("piano", ("x---x---x---x---", "x-x-x-x-x-x-x-x-"), 62),
            Comp("pad", ("x---------------",), 60),
            Comp("steel_guitar", ("x-x-.xx-x-x-.xx-",), 52, strum_s=0.01),
            Comp("e_piano", ("x---..x-..x-x---",), 60),
        ),
        leads=("lead_synth", "flute", "brass"),
        lead_chance=0.85,
        chord_beats=(4, 8),
        drive=(1.0, 1.5),
        noise_db=(-60.0, -40.0),
    ),
    "reggae": Recipe(
        tempo_bpm=(64, 90),
        neighbours=('hiphop', 'pop'),
        progressions=("I IV", "I V", "i iv", "I IV V IV"),
        drums=(
            {"kick": "........x.......", "rim": "........x.......", "hat": "x.x.x.x.x.x.x.x."},
            {"kick": "x...x...x...x...", "rim": "........x.......", "hat": "..x...x...x...x."},
            {"kick": "x.......x.......", "snare": "........x.......", "hat": "x.x.x.x.x.x.x.x."},
        ),
        bass_lines=("R---..RFO-..F-..", "..R-R-..F-F-O-..", "R-.RF-..R-.RT-F-"),
        bass_voices=("bass", "sub_bass"),
        comps=(
            Comp("muted_guitar", ("..x...x...x...x.", "....x.......x..."), 62),
            Comp("organ", ("..xx..xx..xx..xx", "..x...x...x...x."), 60),
            Comp("guitar", ("..x...x...x...x.",), 60),
        ),
        leads=("organ", "brass", "flute"),
        lead_chance=0.3,
        chord_beats=(4, 8),
        swing=(0.5, 0.6),
        fill_chance=0.15,
        levels_db={"bass": (0.0, 4.0)},
    ),
    "rock": Recipe(
        tempo_bpm=(100, 160),
        neighbours=('metal', 'pop', 'country', 'blues'),
        progressions=("I5 bVII5 IV5 I5", "I5 IV5 V5 IV5", "I5 V5 vi5 IV5", "I5 bIII5 IV5 I5"),
        drums=(
            {**_BACKBEAT, "kick": "x.......x.x....."},
            {**_BACKBEAT_PUSH, "hat": ".", "ride": "x.x.x.x.x.x.x.x."},
            {**_BACKBEAT, "kick": "x...x...x...x..."},
        ),
        bass_lines=("R-R-R-R-R-R-R-R-", "RRRRRRRRRRRRRRRR", "R-----R-R-R-F---"),
        bass_voices=("bass",),
        comps=(
            Comp(
                "power_guitar",
                ("x-x-x-x-x-x-x-x-", "x---x---x---x-x-", "x-------x-------", "xxxxxxxxxxxxxxxx"),
                45,
            ),
            Comp("guitar", ("x-x-x-x-x-x-x-x-",), 52, strum_s=0.006),
            Comp("organ", ("x---------------",), 60),
        ),
        leads=("power_guitar", "lead_synth"),
        lead_chance=0.3,
        chord_beats=(4, 8),
        drive=(2.0, 8.0),
    ),
}

#: Each part's level in the mix (dB, after normalising it), unless a recipe says otherwise.
_DEFAULT_LEVELS_DB = {"drums": (-2.0, 2.0), "bass": (-4.0, 0.0), "comp": (-3.0, 1.0), "lead": (-3.0, 1.0)}
_BASS_REGISTER = 28  # E1: bass roots are placed in the octave above this
# Bass pattern letters: pitch above the chord root (T: the chord's third, 7: its seventh,
# A: a chromatic approach from a semitone below the next chord's root).
_BASS_PITCHES = {"R": 0, "2": 2, "F": 7, "6": 9, "O": 12}


# --- composing ----------------------------------------------------------------------------------


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
        return self.chords[int(step // self.chord_steps) % len(self.chords)]

    @property
    def steps(self) -> int:
        return self.bars * STEPS_PER_BAR

    @property
    def is_minor(self) -> bool:
        """Whether the tonic chord (if the progression has one) is minor."""
        return any(chord.root == 0 and chord.is_minor for chord in self.chords)


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _compose(recipe: Recipe, rng: np.random.Generator, n_samples: int, sample_rate: int) -> Song:
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
    chords = parse_progression(_pick(rng, recipe.progressions))
    chord_steps = int(_pick(rng, recipe.chord_beats)) * STEPS_PER_BEAT
    tonic = int(rng.integers(12))
    humanize_s = recipe.humanize_ms / 1000
    return Song(groove, tonic, chords, chord_steps, bars, sample_rate, n_samples, humanize_s)


def _pattern_notes(pattern: str, bar: int) -> list[tuple[int, Hit]]:
    """(absolute step, hit) for one bar of a pattern that may span several bars."""
    bar_in_pattern = bar % max(1, len(pattern) // STEPS_PER_BAR)
    segment = pattern[bar_in_pattern * STEPS_PER_BAR : (bar_in_pattern + 1) * STEPS_PER_BAR]
    return [(bar * STEPS_PER_BAR + hit.step, hit) for hit in parse_pattern(segment)]


def _drum_hits(recipe: Recipe, song: Song, rng: np.random.Generator) -> list[tuple[str, int, float]]:
    """(kit piece, step, velocity) for every drum hit of the clip."""
    pattern = _pick(rng, recipe.drums)
    hits = []
    for bar in range(song.bars):
        fill = bar % 4 == 3 and rng.random() < recipe.fill_chance
        for piece, piece_pattern in pattern.items():
            for step, hit in _pattern_notes(piece_pattern, bar):
                if not (fill and piece == "snare" and step % STEPS_PER_BAR >= 12):
                    hits.append((piece, step, _VELOCITIES[hit.symbol]))
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


def _bass_notes(recipe: Recipe, song: Song, rng: np.random.Generator) -> list[Note]:
    main, variation = _pick(rng, recipe.bass_lines), _pick(rng, recipe.bass_lines)
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


def _comp_notes(comp: Comp, song: Song, rng: np.random.Generator) -> list[Note]:
    rhythm = _pick(rng, comp.rhythms)
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


def _lead_notes(recipe: Recipe, song: Song, rng: np.random.Generator, register: int = 72) -> list[Note]:
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
        position = int(np.clip(position + _pick(rng, (-2, -1, -1, 0, 1, 1, 2)), 0, len(pitches) - 1))
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
            varied = midi + (_pick(rng, (-2, 2)) if rng.random() < 0.1 else 0)
            length = min(following - step, 2 * STEPS_PER_BEAT)
            notes.append(Note(start + step, length, (varied,), 0.8 + 0.2 * rng.random()))
    return notes


# --- rendering ----------------------------------------------------------------------------------


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
    hits = _drum_hits(recipe, song, rng)
    jitter = rng.normal(0.0, song.humanize_s, size=len(hits))
    gains = rng.uniform(0.85, 1.0, size=len(hits))
    for (piece, step, velocity), jitter_s, gain in zip(hits, jitter, gains):
        add_at(track, _onset(song, step, jitter_s), kit[piece], velocity * gain)
    return track


def _render_bass(recipe: Recipe, song: Song, rng: np.random.Generator) -> np.ndarray:
    voice = _pick(rng, recipe.bass_voices)
    return _render_notes(song, _bass_notes(recipe, song, rng), voice, rng)


def _render_comps(recipe: Recipe, song: Song, rng: np.random.Generator) -> np.ndarray:
    """One or two of the genre's chordal parts, distorted as the genre (and clip) has it."""
    count = rng.integers(1, 3)
    comps = [recipe.comps[i] for i in rng.permutation(len(recipe.comps))[:count]]
    track = sum(
        _render_notes(song, _comp_notes(comp, song, rng), comp.voice, rng, comp.strum_s) for comp in comps
    )
    drive = rng.uniform(*recipe.drive)
    if drive > 1.0:  # a fixed input level, so the drive alone sets how hard it clips
        track = recipe.clipper(_normalised(track) * np.float32(0.3), drive)
    return track


def _render_lead(recipe: Recipe, song: Song, rng: np.random.Generator) -> np.ndarray:
    if not recipe.leads or rng.random() >= recipe.lead_chance:
        return np.zeros(song.n_samples, dtype=np.float32)  # an instrumental
    voice = _pick(rng, recipe.leads)
    return _render_notes(song, _lead_notes(recipe, song, rng), voice, rng)


_PARTS = {"drums": _render_drums, "bass": _render_bass, "comp": _render_comps, "lead": _render_lead}


def _part_recipe(recipe: Recipe, rng: np.random.Generator) -> Recipe:
    """The recipe one part is played from: the clip's genre's, or now and then a related genre's.

    Genres borrow from each other (country rock, jazz rap, disco pop); letting a part cross
    over keeps the song's tempo, key and chords but blurs the class boundary, as in real data.
    """
    if recipe.neighbours and rng.random() < CROSSOVER_CHANCE:
        return RECIPES[_pick(rng, recipe.neighbours)]
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


def _master(recipe: Recipe, rng: np.random.Generator, tracks: dict[str, np.ndarray],
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


# --- public API ---------------------------------------------------------------------------------


def _check_genre(genre: str) -> None:
    if genre not in RECIPES:
        raise BenchmarkError(f"unknown genre {genre!r}; the synthetic genres are {', '.join(GTZAN_GENRES)}")


def _check_integer(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise BenchmarkError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_audio_arguments(seconds: float, sample_rate: int, seed: int) -> None:
    is_number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if not (is_number and math.isfinite(seconds) and seconds > 0):
        raise BenchmarkError(f"seconds must be a positive number, got {seconds!r}")
    _check_integer("sample_rate", sample_rate, 1)
    _check_integer("seed", seed, 0)


def synthesize_clip(genre: str, index: int, *, seconds: float = 30.0,
                    sample_rate: int = GTZAN_SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """One clip as float32 mono in [-1, 1], length ``round(seconds * sample_rate)``.

    A pure function of its arguments: the random generator is seeded from
    ``(seed, genre's index in GTZAN_GENRES, index)`` alone.
    """
    _check_genre(genre)
    _check_integer("index", index, 0)
    _check_audio_arguments(seconds, sample_rate, seed)
    recipe = RECIPES[genre]
    rng = np.random.default_rng([seed, GTZAN_GENRES.index(genre), index])
    n_samples = max(1, round(seconds * sample_rate))
    song = _compose(recipe, rng, n_samples, sample_rate)
    tracks = {name: render(_part_recipe(recipe, rng), song, rng) for name, render in _PARTS.items()}
    return _master(recipe, rng, tracks, sample_rate)


def write_dataset(out_dir: str | os.PathLike, *, clips_per_genre: int = 100, seconds: float = 30.0,
                  sample_rate: int = GTZAN_SAMPLE_RATE, seed: int = 0,
                  genres: Sequence[str] = GTZAN_GENRES, workers: int | None = None,
                  progress: bool = True) -> Path:
    """Write the data set as ``out_dir/<genre>/<genre>.NNNNN.wav``; return ``out_dir`` as a Path.

    A cache: once complete, ``out_dir/synth.json`` records the parameters, and a later call
    with the same ones returns at once. A folder holding another data set (a marker with
    other parameters, or files but no marker) is a :class:`BenchmarkError`, never
    overwritten. An interrupted run resumes where it stopped: every file is written
    atomically, so any ``.wav`` present is complete.
    """
    out_dir = Path(out_dir).expanduser()
    parameters = _dataset_parameters(clips_per_genre, seconds, sample_rate, seed, genres, workers)
    if _is_complete(out_dir, parameters):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json_atomically(out_dir / _PARTIAL_MARKER_NAME, parameters)
    jobs = []
    for genre in parameters["genres"]:
        folder = out_dir / genre
        folder.mkdir(exist_ok=True)
        for stale in folder.glob(f".*{_TEMP_SUFFIX}"):  # left by a run that was killed
            stale.unlink()
        paths = (folder / f"{genre}.{index:05d}.wav" for index in range(clips_per_genre))
        jobs += [_ClipJob(path, genre, index, seconds, sample_rate, seed)
                 for index, path in enumerate(paths) if not path.exists()]
    _run_jobs(jobs, workers or os.cpu_count() or 1, progress)
    _write_json_atomically(out_dir / MARKER_NAME, parameters)
    (out_dir / _PARTIAL_MARKER_NAME).unlink()
    return out_dir


def _dataset_parameters(clips_per_genre, seconds, sample_rate, seed, genres, workers) -> dict:
    """The marker's content, after checking every argument (one BenchmarkError per bad value)."""
    if isinstance(genres, str):  # a lone name would otherwise be read as a list of letters
        genres = (genres,)
    genres = list(genres)
    for genre in genres:
        _check_genre(genre)
    if not genres or len(set(genres)) != len(genres):
        raise BenchmarkError(f"genres must be distinct and at least one, got {genres!r}")
    _check_integer("clips_per_genre", clips_per_genre, 1)
    _check_audio_arguments(seconds, sample_rate, seed)
    if workers is not None:
        _check_integer("workers", workers, 1)
    return {
        "format": "benchmark synthetic GTZAN",
        "version": FORMAT_VERSION,
        "clips_per_genre": int(clips_per_genre),
        "seconds": float(seconds),
        "sample_rate": int(sample_rate),
        "seed": int(seed),
        "genres": genres,
    }


def _read_marker(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BenchmarkError(f"unreadable data set marker {path} ({error}); choose another folder") from None
    if not isinstance(content, dict):
        raise BenchmarkError(f"{path} is not a synthetic data set marker; choose another folder")
    return content


def _is_complete(out_dir: Path, parameters: dict) -> bool:
    """True if ``out_dir`` holds this data set, complete; False if it is free for it (missing,
    empty, or this data set partly written); a BenchmarkError if it holds anything else."""
    complete = _read_marker(out_dir / MARKER_NAME)
    if complete is not None:
        _check_same_parameters(out_dir, complete, parameters, "a synthetic data set")
        return True
    partial = _read_marker(out_dir / _PARTIAL_MARKER_NAME)
    if partial is not None:
        _check_same_parameters(out_dir, partial, parameters, "a partly written synthetic data set")
        return False
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BenchmarkError(
            f"{out_dir} is not an empty folder and holds no synthetic data set; choose another folder"
        )
    return False


def _check_same_parameters(out_dir: Path, found: dict, wanted: dict, holding: str) -> None:
    if found != wanted:
        raise BenchmarkError(
            f"{out_dir} holds {holding} made with other parameters ({_describe(found)}, not "
            f"{_describe(wanted)}); choose another folder, or delete it to regenerate"
        )


def _describe(parameters: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in parameters.items() if key != "format")


def _write_json_atomically(path: Path, content: dict) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}{_TEMP_SUFFIX}")
    temp.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, path)


class _ClipJob(NamedTuple):
    path: Path
    genre: str
    index: int
    seconds: float
    sample_rate: int
    seed: int


def _write_clip(job: _ClipJob) -> None:
    """Render one clip and write it under a temporary name, renamed into place when complete."""
    audio = synthesize_clip(
        job.genre, job.index, seconds=job.seconds, sample_rate=job.sample_rate, seed=job.seed
    )
    temp = job.path.with_name(f".{job.path.name}.{os.getpid()}{_TEMP_SUFFIX}")
    try:
        # Converting to int16 here, not in libsndfile, is faster and leaves nothing to its rounding.
        pcm = np.round(audio * np.float32(32767)).astype(np.int16)
        sf.write(temp, pcm, job.sample_rate, subtype="PCM_16", format="WAV")
        os.replace(temp, job.path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _run_jobs(jobs: list[_ClipJob], workers: int, progress: bool) -> None:
    bar = tqdm(total=len(jobs), desc="synthesising clips", unit="clip", disable=not progress)
    with bar:
        if workers == 1 or len(jobs) <= 1:  # no process start-up cost, and simpler to debug
            for job in jobs:
                _write_clip(job)
                bar.update()
            return
        executor = ProcessPoolExecutor(max_workers=min(workers, len(jobs)))
        try:
            for _ in executor.map(_write_clip, jobs, chunksize=4):
                bar.update()
        finally:
            # On an error or Ctrl-C, drop the clips not yet started instead of rendering them all.
            executor.shutdown(wait=True, cancel_futures=True)
