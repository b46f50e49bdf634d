"""Genre names are user data: they come from folder names, so anything a folder may be called.

MLflow accepts only letters, digits, ``_ - . / : `` and spaces in metric names (``r&b`` fails a
run after training), and file names, search filters and shells each have their own rules. So
wherever a genre's name becomes part of a name (the per-genre metrics ``test_f1_<genre>``), it
goes through :func:`metric_names`: names that are already plain (``hiphop``, ``rock``) stay as
they are; others are spelt in ASCII letters, digits, ``_``, ``.`` and ``-`` (``r&b`` -> ``r_b``,
``música`` -> ``musica``), made unique within the data set. The original names are kept
wherever names are data rather than keys: ``labels.json`` (with the mapping), the confusion
matrix, the predictions and the audio model's output.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

#: A name that needs no mapping: plain ASCII letters, digits, underscore, dot and dash.
_PLAIN = re.compile(r"[A-Za-z0-9_.-]+")
_OTHER = re.compile(r"[^A-Za-z0-9_.-]+")
#: MLflow keys may be 250 characters; ``test_precision_`` and a uniqueness suffix must fit too.
MAX_LENGTH = 100
FALLBACK = "genre"


def is_plain(name: str) -> bool:
    """True where ``name`` can be used in metric and file names as it is."""
    return bool(_PLAIN.fullmatch(name)) and name not in (".", "..") and len(name) <= MAX_LENGTH


def metric_names(class_names: Iterable[str]) -> dict[str, str]:
    """Each genre's name as metric names (and tags, file names) may use it, unique within the set.

    Plain names map to themselves and are reserved first; the others are mapped in sorted
    order, a clash taking ``_2``, ``_3``, ... so the mapping depends on the set of names alone.
    """
    names = [str(name) for name in class_names]
    mapping = {name: name for name in names if is_plain(name)}
    taken = set(mapping.values())
    for name in sorted(set(names) - set(mapping)):
        base = _spelt_plainly(name)
        candidate, counter = base, 1
        while candidate in taken:
            counter += 1
            candidate = f"{base}_{counter}"
        mapping[name] = candidate
        taken.add(candidate)
    return {name: mapping[name] for name in names}


def renamed(class_names: Iterable[str]) -> dict[str, str]:
    """Only the genres whose metric name differs from their name (what ``data verify`` flags)."""
    return {name: safe for name, safe in metric_names(class_names).items() if name != safe}


def _spelt_plainly(name: str) -> str:
    # Accents dropped (NFKD splits "ú" into "u" and a combining mark), every other run of
    # characters outside the plain set becomes one "_".
    ascii_only = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    spelt = _OTHER.sub("_", ascii_only).strip("_.")[:MAX_LENGTH].strip("_.")
    return spelt or FALLBACK
