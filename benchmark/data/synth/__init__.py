"""A deterministic, synthetic, GTZAN-shaped data set: the harness's embedded default.

Every clip is a short piece of procedurally composed music: a drum pattern, a bass line,
chords and sometimes a melody, on a tempo, key, swing and mix drawn from the clip's own
random generator within its genre's :class:`Recipe`. Recipes share ingredients the way
real genres do (rock, pop and country all play a backbeat; rock and metal both distort
power chords), so the classes overlap: learnable, but not trivially.

A clip is a pure function of ``(seed, genre, index, seconds, sample_rate)``, so any subset
can be generated in any order, in parallel, and comes out byte-identical.

The modules, in the order a clip passes through them:

- :mod:`.music`: the notation (roman-numeral chords, scales, pattern strings, the groove);
- :mod:`.recipes`: the ten genres as :class:`Recipe` objects;
- :mod:`.compose`: a clip's song (tempo, key, chords) and every part's notes;
- :mod:`.voices`: the instruments and drum sounds, rendered as short arrays;
- :mod:`.render`: the parts as audio, mixed and mastered;
- :mod:`.clip`: :func:`synthesize_clip`, tying those together;
- :mod:`.dataset`: :func:`write_dataset`, the resumable, parallel cache on disk.
"""

from __future__ import annotations

from benchmark.data.synth.clip import synthesize_clip
from benchmark.data.synth.dataset import FORMAT_VERSION, MARKER_NAME, write_dataset
from benchmark.data.synth.recipes import RECIPES, Comp, Recipe
from benchmark.data.synth.render import CROSSOVER_CHANCE, PEAK

__all__ = [
    "CROSSOVER_CHANCE",
    "FORMAT_VERSION",
    "MARKER_NAME",
    "PEAK",
    "RECIPES",
    "Comp",
    "Recipe",
    "synthesize_clip",
    "write_dataset",
]
