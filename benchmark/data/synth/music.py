"""The notation the genre recipes are written in: chords, scales, rhythm patterns, the groove.

Harmony is written as roman numerals relative to the key (``"I V vi IV"``), so one recipe
serves every key; rhythm is written as pattern strings on a sixteenth-note grid, which the
:class:`Groove` turns into seconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

STEPS_PER_BEAT = 4  # the grid is in sixteenth notes
STEPS_PER_BAR = 16

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
# note one more step, '.' for silence. Bass patterns use pitch letters instead (see
# _BASS_PITCHES in compose.py).
VELOCITIES = {"X": 1.0, "x": 0.8, "o": 0.55, "g": 0.3}


class Hit(NamedTuple):
    """One onset of a pattern string."""

    step: int  # sixteenth within the pattern
    length: int  # in sixteenths, counting the '-' that follow
    symbol: str


@cache  # a handful of distinct strings, parsed once per bar otherwise
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
        """The time of a (possibly fractional) step, in seconds from the clip's start."""
        pair, within = divmod(step / self.swing_steps, 1.0)
        if within < 0.5:
            swung = 2 * within * self.swing
        else:
            swung = self.swing + (within - 0.5) * 2 * (1 - self.swing)
        t = (pair + swung) * self.swing_steps * self.step_s
        # Rubato: a slow wobble of the time axis, so phrases push and pull as players do.
        return t + self.rubato_s * math.sin(2 * math.pi * t / self.rubato_period_s) - self.start_s
