"""Instrument primitives for :mod:`benchmark.data.synth`: wavetable tones, one-shot drums, mixing.

Every sound here is rendered once, as a short array, and the caller adds copies of it at
its onsets: a 30 s clip holds hundreds of notes but only a few dozen distinct ones, so
rendering per distinct note (and never per sample in Python) is what keeps a full
GTZAN-sized set fast to generate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

#: Samples in one period of a wavetable; a power of two so the phase wraps with a bit mask.
TABLE_SIZE = 2048
# Fixed-point phase: time in 1/2**_TIME_BITS samples times increment in 1/2**_STEP_BITS table
# entries per sample. Integer phase is exact over long notes and ~5x faster than float math.
_TIME_BITS = 8
_STEP_BITS = 16


def midi_to_hz(midi: float) -> float:
    """Equal-tempered frequency of a MIDI note number (69 = A4 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi - 69) / 12)


@dataclass(frozen=True)
class Voice:
    """A pitched instrument: a bright attack spectrum fading into a mellow one, under an envelope.

    Plucked and struck strings lose their upper harmonics first; cross-fading two
    wavetables captures that at the cost of one extra table look-up per sample.
    """

    bright: tuple[float, ...]  # harmonic amplitudes (fundamental first) at the onset
    mellow: tuple[float, ...]  # ... once the attack has faded
    attack_s: float = 0.005
    bright_decay_s: float = 0.1  # time constant of the bright-to-mellow cross-fade
    decay_s: float = float("inf")  # time constant of the overall decay (inf: sustained)
    release_s: float = 0.05  # linear fade after the note's end, so notes never click
    vibrato_hz: float = 0.0
    vibrato_cents: float = 0.0
    detune_cents: float = 0.0  # a second, detuned oscillator widens ensembles and pads


def _saw(count: int) -> tuple[float, ...]:
    return tuple(1.0 / k for k in range(1, count + 1))


def _square(count: int) -> tuple[float, ...]:
    return tuple((1.0 / k if k % 2 else 0.0) for k in range(1, count + 1))


def _rolloff(count: int, power: float) -> tuple[float, ...]:
    return tuple(k**-power for k in range(1, count + 1))


_DRAWBARS = (1, 0.8, 0.6, 0, 0.4, 0, 0, 0.3)  # a tonewheel organ's registration, as harmonics


#: The instrument palette the genre recipes draw from, by name.
VOICES: dict[str, Voice] = {
    "piano": Voice(_rolloff(14, 0.9), _rolloff(6, 2.2), 0.003, 0.25, 1.6, 0.08),
    "e_piano": Voice((1, 0.3, 0.5, 0.1, 0.2), (1, 0.15, 0.05), 0.004, 0.3, 2.0, 0.1),
    "organ": Voice(_DRAWBARS, _DRAWBARS, 0.01, 1, release_s=0.04),
    "guitar": Voice(_saw(14), _rolloff(5, 1.8), 0.002, 0.12, 1.0, 0.06),
    "steel_guitar": Voice(_rolloff(18, 0.6), _rolloff(8, 1.4), 0.001, 0.2, 1.3, 0.08),
    "power_guitar": Voice(_saw(10), _saw(6), 0.003, 0.4, 3.0, 0.03),
    "muted_guitar": Voice(_saw(10), _rolloff(3, 2.0), 0.002, 0.03, 0.09, 0.02),
    "strings": Voice(_saw(12), _saw(12), 0.25, 1, release_s=0.4, vibrato_hz=5.2, vibrato_cents=12,
                     detune_cents=9),
    "pad": Voice(_saw(8), _rolloff(5, 2.0), 0.4, 1.5, release_s=0.6, detune_cents=12),
    "brass": Voice(_rolloff(10, 0.7), _rolloff(10, 1.0), 0.03, 0.3, 2.5, 0.08, 5.0, 8),
    "sax": Voice((1, 0.9, 0.7, 0.6, 0.4, 0.3, 0.2), (1, 0.7, 0.5, 0.3, 0.2), 0.03, 0.5, 4.0, 0.08, 4.8, 15),
    "flute": Voice((1, 0.3, 0.1, 0.05), (1, 0.15, 0.03), 0.06, 0.4, release_s=0.12, vibrato_hz=5.0,
                   vibrato_cents=14),
    "violin": Voice(_saw(12), _saw(10), 0.08, 1, release_s=0.15, vibrato_hz=5.8, vibrato_cents=22),
    "lead_synth": Voice(_square(11), _square(7), 0.01, 0.3, release_s=0.06, vibrato_hz=5.5,
                        vibrato_cents=10),
    "bass": Voice((1, 0.6, 0.35, 0.2, 0.1), (1, 0.3, 0.08), 0.004, 0.15, 0.9, 0.05),
    "upright_bass": Voice((1, 0.5, 0.25, 0.1), (1, 0.2), 0.008, 0.08, 0.45, 0.06),
    "synth_bass": Voice(_saw(10), _saw(4), 0.003, 0.08, 0.6, 0.03),
    "sub_bass": Voice((1, 0.1), (1,), 0.005, 0.2, 1.5, 0.08),
    "cello": Voice(_saw(10), _saw(8), 0.15, 1, release_s=0.3, vibrato_hz=5.0, vibrato_cents=15,
                   detune_cents=5),
}


@lru_cache(maxsize=512)
def _wavetable(amplitudes: tuple[float, ...], count: int) -> np.ndarray:
    """One period of the first ``count`` harmonics, peak-normalised (cached across notes and clips)."""
    k = np.arange(1, count + 1)
    amps = np.asarray(amplitudes[:count], dtype=np.float64)
    phase = np.arange(TABLE_SIZE) / TABLE_SIZE
    table = amps @ np.sin(2 * np.pi * np.outer(k, phase))
    return (table / max(np.max(np.abs(table)), 1e-9)).astype(np.float32)


def _band_limited(amplitudes: tuple[float, ...], hz: float, sample_rate: int) -> np.ndarray:
    # Harmonics above Nyquist would alias into inharmonic noise, so drop them per note.
    count = max(1, min(len(amplitudes), int(0.45 * sample_rate / hz)))
    return _wavetable(amplitudes, count)


def _timebase(voice: Voice, total: int, sample_rate: int) -> np.ndarray:
    """Fixed-point time axis, warped by the vibrato so every note can share it."""
    base = np.arange(total, dtype=np.int64) << _TIME_BITS
    if voice.vibrato_cents <= 0:
        return base
    # Frequency f * (1 + d sin(2 pi r t)) integrates to phase f * (t - d cos(2 pi r t) / (2 pi r));
    # the warp is the same for every pitch, so it is computed once per chord.
    t = np.arange(total) / sample_rate
    depth = 2 ** (voice.vibrato_cents / 1200) - 1
    onset = np.minimum(t / 0.3, 1.0)  # players bring vibrato in after the attack
    warp = -onset * depth * np.cos(2 * np.pi * voice.vibrato_hz * t) / (2 * np.pi * voice.vibrato_hz)
    return base + np.round(warp * sample_rate * (1 << _TIME_BITS)).astype(np.int64)


def _table_index(timebase: np.ndarray, hz: float, sample_rate: int) -> np.ndarray:
    step = round(hz * TABLE_SIZE / sample_rate * (1 << _STEP_BITS))
    return ((timebase * step) >> (_TIME_BITS + _STEP_BITS)) & (TABLE_SIZE - 1)


def _envelope(voice: Voice, held: int, total: int, sample_rate: int) -> np.ndarray:
    env = np.ones(total, dtype=np.float32)
    attack = min(held, max(1, int(voice.attack_s * sample_rate)))
    env[:attack] = np.linspace(0.0, 1.0, attack, endpoint=False, dtype=np.float32)
    if np.isfinite(voice.decay_s):
        env *= np.exp(-np.arange(total, dtype=np.float32) / np.float32(voice.decay_s * sample_rate))
    env[held:] *= np.linspace(1.0, 0.0, total - held, dtype=np.float32)
    return env


def render_tone(voice: Voice, midis: Sequence[float], held: int, sample_rate: int) -> np.ndarray:
    """A note or chord held for ``held`` samples, plus the voice's release tail."""
    total = held + max(1, int(voice.release_s * sample_rate))
    timebase = _timebase(voice, total, sample_rate)
    detunes = (1.0, 2 ** (voice.detune_cents / 1200)) if voice.detune_cents else (1.0,)
    bright = np.zeros(total, dtype=np.float32)
    mellow = np.zeros(total, dtype=np.float32)
    for midi in midis:
        for ratio in detunes:
            hz = midi_to_hz(midi) * ratio
            index = _table_index(timebase, hz, sample_rate)
            bright += _band_limited(voice.bright, hz, sample_rate)[index]
            mellow += _band_limited(voice.mellow, hz, sample_rate)[index]
    fade = np.exp(-np.arange(total, dtype=np.float32) / np.float32(voice.bright_decay_s * sample_rate))
    tone = mellow + (bright - mellow) * fade
    return tone * (_envelope(voice, held, total, sample_rate) / (len(midis) * len(detunes)) ** 0.5)


# --- drums --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kit:
    """Ranges (low, high) for the drum sounds' parameters; each clip draws its own kit from them."""

    kick_hz: tuple[float, float] = (45.0, 60.0)
    kick_decay_s: tuple[float, float] = (0.18, 0.3)
    kick_click: tuple[float, float] = (0.1, 0.3)
    snare_hz: tuple[float, float] = (170.0, 220.0)
    snare_decay_s: tuple[float, float] = (0.12, 0.2)
    hat_decay_s: tuple[float, float] = (0.03, 0.06)
    cymbal_decay_s: tuple[float, float] = (0.8, 1.6)
    brightness_hz: tuple[float, float] = (5000.0, 8000.0)


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-variance white noise; uniform rather than Gaussian because it is ~6x faster to draw
    and, once filtered, sounds the same."""
    return (rng.random(n, dtype=np.float32) - np.float32(0.5)) * np.float32(12**0.5)


def _decaying(n: int, decay_s: float, sample_rate: int) -> np.ndarray:
    return np.exp(-np.arange(n, dtype=np.float32) / np.float32(decay_s * sample_rate))


def filtered(sound: np.ndarray, cutoff_hz: float, btype: str, sample_rate: int,
             order: int = 2) -> np.ndarray:
    """Butterworth low- or high-pass, its cutoff kept below Nyquist whatever the sample rate."""
    cutoff = min(cutoff_hz, 0.45 * sample_rate) / (0.5 * sample_rate)
    # lfilter runs in float32 when everything is float32 (sosfilt always converts to float64 and
    # back, 3x slower on a whole clip); at order 2 the transfer-function form is well-conditioned.
    b, a = (np.asarray(c, dtype=np.float32) for c in signal.butter(order, cutoff, btype))
    return signal.lfilter(b, a, np.asarray(sound, dtype=np.float32))


def _kick(rng: np.random.Generator, kit: Kit, sample_rate: int) -> np.ndarray:
    decay = rng.uniform(*kit.kick_decay_s)
    n = int(4 * decay * sample_rate)
    t = np.arange(n) / sample_rate
    low = rng.uniform(*kit.kick_hz)
    hz = low + 3 * low * np.exp(-t / 0.025)  # the fast downward sweep is what makes it a kick
    body = np.sin(2 * np.pi * np.cumsum(hz) / sample_rate).astype(np.float32)
    click = filtered(noise(rng, n), 3000, "highpass", sample_rate) * _decaying(n, 0.004, sample_rate)
    return body * _decaying(n, decay, sample_rate) + rng.uniform(*kit.kick_click) * click


def _snare(rng: np.random.Generator, kit: Kit, sample_rate: int) -> np.ndarray:
    decay = rng.uniform(*kit.snare_decay_s)
    n = int(4 * decay * sample_rate)
    t = np.arange(n) / sample_rate
    tone = np.sin(2 * np.pi * rng.uniform(*kit.snare_hz) * t).astype(np.float32)
    tone *= _decaying(n, 0.04, sample_rate)
    rattle = filtered(noise(rng, n), rng.uniform(*kit.brightness_hz) * 0.6, "lowpass", sample_rate)
    rattle = filtered(rattle, 400, "highpass", sample_rate) * _decaying(n, decay, sample_rate)
    return 0.5 * tone + rattle / max(np.max(np.abs(rattle)), 1e-9)


def _hat(rng: np.random.Generator, kit: Kit, decay_s: float, sample_rate: int) -> np.ndarray:
    n = int(4 * decay_s * sample_rate)
    hiss = filtered(noise(rng, n), rng.uniform(*kit.brightness_hz), "highpass", sample_rate)
    return hiss * _decaying(n, decay_s, sample_rate) / max(np.max(np.abs(hiss)), 1e-9)


def _cymbal(rng: np.random.Generator, kit: Kit, decay_s: float, sample_rate: int) -> np.ndarray:
    # A metallic ring: inharmonic square waves (as in analogue drum machines) plus noise.
    n = int(2.5 * decay_s * sample_rate)
    ring = np.zeros(n, dtype=np.float32)
    for hz in rng.uniform(300, 900, size=6):
        ring += _square_wave(hz, n, sample_rate)
    metal = filtered(ring + 2 * noise(rng, n), 3500, "highpass", sample_rate)
    return metal * _decaying(n, decay_s, sample_rate) / max(np.max(np.abs(metal)), 1e-9)


def _square_wave(hz: float, n: int, sample_rate: int) -> np.ndarray:
    step = round(hz / sample_rate * (1 << _STEP_BITS))  # integer phase: the top bit is the square
    half = (np.arange(n, dtype=np.int64) * step >> (_STEP_BITS - 1)) & 1
    return half.astype(np.float32) * 2 - 1


def _clap(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    n = int(0.25 * sample_rate)
    hiss = filtered(noise(rng, n), 1200, "highpass", sample_rate)
    # Several hands a few milliseconds apart, then the room: a burst train over a short tail.
    envelope = np.zeros(n, dtype=np.float32)
    layers = ((0.0, 0.006, 1.0), (0.011, 0.006, 1.0), (0.022, 0.006, 1.0), (0.022, 0.06, 0.6))
    for delay_s, decay_s, level in layers:
        start = int(delay_s * sample_rate)
        layer = level * _decaying(n - start, decay_s, sample_rate)
        envelope[start:] = np.maximum(envelope[start:], layer)
    return hiss * envelope / max(np.max(np.abs(hiss)), 1e-9)


def _rim(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    n = int(0.08 * sample_rate)
    t = np.arange(n) / sample_rate
    knock = np.sin(2 * np.pi * rng.uniform(700, 1000) * t) + 0.5 * np.sin(2 * np.pi * 1650 * t)
    return (knock * _decaying(n, 0.012, sample_rate)).astype(np.float32)


def render_kit(rng: np.random.Generator, kit: Kit, sample_rate: int) -> dict[str, np.ndarray]:
    """One clip's drum sounds, by the names the drum patterns use."""
    hat_decay = rng.uniform(*kit.hat_decay_s)
    cymbal_decay = rng.uniform(*kit.cymbal_decay_s)
    sounds = {
        "kick": _kick(rng, kit, sample_rate),
        "snare": _snare(rng, kit, sample_rate),
        "hat": _hat(rng, kit, hat_decay, sample_rate),
        "open_hat": _hat(rng, kit, 6 * hat_decay, sample_rate),
        "ride": 0.5 * _cymbal(rng, kit, cymbal_decay, sample_rate),
        "crash": _cymbal(rng, kit, 1.5 * cymbal_decay, sample_rate),
        "clap": _clap(rng, sample_rate),
        "rim": _rim(rng, sample_rate),
    }
    # float32 throughout: adding a float64 sound would make a float64 temporary at every hit.
    return {name: sound.astype(np.float32, copy=False) for name, sound in sounds.items()}


# --- mixing -------------------------------------------------------------------------------------


def add_at(track: np.ndarray, start: int, sound: np.ndarray, gain: float) -> None:
    """Add ``gain * sound`` into ``track`` from sample ``start``, cropping what falls outside."""
    end = min(len(track), start + len(sound))
    skip = max(0, -start)
    if end > start + skip:
        track[start + skip : end] += np.float32(gain) * sound[skip : end - start]


def soft_clip(x: np.ndarray, drive: float) -> np.ndarray:
    """Overdrive: tanh saturation, level-matched so a drive of 1 is nearly transparent."""
    drive = np.float32(drive)  # a float64 scalar would silently turn the whole track into float64
    return np.tanh(drive * x) / np.tanh(drive)


def hard_clip(x: np.ndarray, drive: float) -> np.ndarray:
    """Distortion: flat-topped clipping after gain, the square-ish sound of metal guitars."""
    return np.clip(np.float32(drive) * x, -1.0, 1.0)
