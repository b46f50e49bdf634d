"""The ten genres as recipes: ranges and choices from which every clip draws its own song.

Recipes share ingredients the way real genres do (rock, pop and country all play a
backbeat; rock and metal both distort power chords), and each names the neighbouring
genres whose parts a clip may borrow, so the classes overlap: learnable, but not trivially.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from benchmark.data.synth.voices import Kit, hard_clip, soft_clip


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
