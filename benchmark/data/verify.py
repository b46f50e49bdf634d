"""Checking a data set before training on it: ``python -m benchmark data verify DIR``.

Every file is decoded once at its native rate and channels, giving per-genre counts and
durations, the sample rates and channel counts present, the files that cannot be decoded (or
that are truncated or shorter than ``data.min_seconds``: runs skip them all, for the same
reasons, see :mod:`benchmark.data.tracks`), genre names that metric names spell otherwise
(:mod:`benchmark.genre_names`), and exact duplicates: files whose decoded samples are
identical, whatever their names, containers or bytes (GTZAN holds several repeated clips). Duplicates that land in different splits of the
experiment's protocol leak test audio into training, so they are warned about per fold.

The result is a manifest, one CSV row per file, kept in the cache (the data folder may be
read-only) so that runs can reuse it cheaply and log it: :func:`load_manifest` returns it only
while no file was added, removed or changed since.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.config import SplitConfig
from benchmark.data.features import data_fingerprint
from benchmark.data.parallel import map_in_processes
from benchmark.data.split import SplitPlan, plan_splits
from benchmark.data.tracks import AudioDecodeError, check_length, content_hash, decode_native, discover_tracks
from benchmark.errors import BenchmarkError
from benchmark.genre_names import renamed
from benchmark.paths import cache_root, writable_cache_root

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: The manifest's columns and their types; reading the CSV back applies the same types.
COLUMNS = {
    "relative_path": "str", "label": "str", "track_id": "str", "size_bytes": "int64",
    "mtime_ns": "int64", "content_hash": "str", "decodable": "bool", "error": "str",
    "sample_rate": "Int64", "channels": "Int64", "duration_seconds": "float64", "audio_hash": "str",
}
_MAYBE_EMPTY = ("sample_rate", "channels", "duration_seconds")  # empty where undecodable


@dataclass(frozen=True)
class CrossSplitDuplicate:
    """Copies of one recording in different splits of one fold: (relative path, split) each."""

    fold: int | None
    members: list[tuple[str, str]]


@dataclass
class VerifyReport:
    """What :func:`verify_dataset` found, and where it wrote the manifest."""

    root: Path
    manifest: pd.DataFrame
    fingerprint: str
    duplicates: list[list[str]]
    manifest_file: Path
    #: The split protocol checked for cross-split duplicates (None: no check).
    protocol: str | None = None
    cross_split: list[CrossSplitDuplicate] = field(default_factory=list)
    #: Why the cross-split check could not run (e.g. too few tracks per genre), else None.
    split_note: str | None = None

    @property
    def undecodable(self) -> pd.DataFrame:
        """Every file a run would skip: undecodable, truncated or too short (``error`` says which)."""
        return self.manifest[~self.manifest["decodable"]]

    @property
    def renamed_genres(self) -> dict[str, str]:
        """Genres whose per-genre metrics use another name (``r&b`` -> ``r_b``)."""
        return renamed(sorted(self.manifest["label"].unique()))

    @property
    def clean(self) -> bool:
        """No file a run would skip, no duplicate and no renamed genre: the data itself is clean."""
        return self.undecodable.empty and not self.duplicates and not self.renamed_genres

    @property
    def exit_status(self) -> int:
        """``data verify``'s status: 0 clean and fully checked, else 1 (a CI gate fails on either).

        A split check that could not run is a finding too: it leaves leaks across splits unchecked.
        """
        return 0 if self.clean and self.split_note is None else 1

    def summary_lines(self) -> list[str]:
        """The report for a human: per-genre table, formats, problems, fingerprint, manifest."""
        frame = self.manifest
        header = f"{'genre':<14}{'files':>6}{'decodable':>10}{'total s':>10}{'min s':>8}{'median s':>9}{'max s':>8}"
        lines = [f"{len(frame)} audio files in {frame['label'].nunique()} genres under {self.root}", "", header]
        for label, rows in frame.groupby("label", sort=True):
            seconds = rows["duration_seconds"].dropna()
            stats = (f"{seconds.sum():>10.1f}{seconds.min():>8.1f}{seconds.median():>9.1f}{seconds.max():>8.1f}"
                     if len(seconds) else f"{'-':>10}{'-':>8}{'-':>9}{'-':>8}")
            lines.append(f"{label:<14}{len(rows):>6}{int(rows['decodable'].sum()):>10}{stats}")
        decoded = frame[frame["decodable"]]
        lines += ["", "sample rates: " + _counted(decoded["sample_rate"], " Hz"),
                  "channels: " + _counted(decoded["channels"], "")]
        # Decoded but unusable files keep their sample rate: listed apart from the undecodable.
        decoded_but_skipped = self.undecodable["sample_rate"].notna()
        for title, rows in (("undecodable files", self.undecodable[~decoded_but_skipped]),
                            ("truncated or too short files", self.undecodable[decoded_but_skipped])):
            if not rows.empty:
                lines.append(f"{title} ({len(rows)}):")
                lines += [f"  {row.relative_path}: {row.error}" for row in rows.itertuples()]
        for name, metric_name in self.renamed_genres.items():
            lines.append(f"WARNING: genre {name!r} is named {metric_name!r} in metric names (test_f1_{metric_name}, "
                         "...): its folder name is not plain ASCII letters, digits, '_', '.' and '-'; "
                         "runs keep the folder's name in labels.json")
        if self.duplicates:
            lines.append(f"duplicate groups, identical decoded audio ({len(self.duplicates)}):")
            lines += ["  " + " = ".join(group) for group in self.duplicates]
        else:
            lines.append("duplicates: none")
        if self.split_note:
            lines.append(f"split check ({self.protocol}) not possible: {self.split_note}")
        elif self.protocol:
            lines.append(f"split check ({self.protocol}): {len(self.cross_split)} duplicate group(s) "
                         "span different splits")
        for item in self.cross_split:
            where = f" in fold {item.fold}" if item.fold is not None else ""
            members = ", ".join(f"{path} [{split}]" for path, split in item.members)
            lines.append(f"WARNING: duplicates in different splits{where}: {members}")
        return lines + [f"data fingerprint: {self.fingerprint}", f"manifest: {self.manifest_file}"]


def verify_dataset(root: str | Path, *, split_config: SplitConfig | None = None, workers: int = 0,
                   progress: bool = True, copy_to: str | Path | None = None,
                   min_seconds: float = 0.0) -> VerifyReport:
    """Inspect every audio file under ``root`` and write its manifest (also to ``copy_to``).

    ``workers=0`` uses one process per CPU core; ``workers=1`` runs in this process. With
    ``split_config``, duplicates are checked against the splits a run would make. Files shorter
    than ``min_seconds`` (``data.min_seconds``) are reported as runs would skip them.
    """
    import pandas as pd

    root = Path(root).expanduser()
    tracks = discover_tracks(root)
    writable_cache_root()  # the manifest goes there: a read-only cache fails before the slow part
    results = map_in_processes(inspect_file, [track.path for track in tracks], min_seconds, workers=workers,
                               progress=progress, desc="verify")
    rows = [{"relative_path": track.relative_path, "label": track.label, "track_id": track.track_id,
             **results[index]} for index, track in enumerate(tracks)]
    manifest = _typed(pd.DataFrame(rows, columns=list(COLUMNS)))
    report = VerifyReport(
        root=root,
        manifest=manifest,
        fingerprint=data_fingerprint(zip(manifest["relative_path"], manifest["content_hash"],
                                         manifest["label"], strict=True)),
        duplicates=duplicate_groups(manifest),
        manifest_file=write_manifest(manifest, manifest_path(root)),
    )
    if copy_to is not None:
        write_manifest(manifest, Path(copy_to).expanduser())
    if split_config is not None:
        report.protocol = split_config.protocol
        # The plan a run makes: over the decodable tracks only, in discovery order.
        kept = [track for index, track in enumerate(tracks) if results[index]["decodable"]]
        try:
            plan = plan_splits([t.track_id for t in kept], [t.label for t in kept], split_config)
        except BenchmarkError as error:
            report.split_note = str(error)
        else:
            report.cross_split = duplicates_across_splits(
                report.duplicates, [t.relative_path for t in kept], plan)
    return report


def inspect_file(path: Path, min_seconds: float = 0.0) -> dict:
    """Worker: size, mtime, content hash and decoded properties of one file (manifest columns).

    A file a run would skip is not ``decodable`` and its ``error`` is the run's skip reason;
    a truncated or too short one still shows its rate, channels and duration.
    """
    stat = path.stat()  # before hashing: a later change then shows as stale, never as fresh
    row = {"size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "content_hash": content_hash(path),
           "decodable": False, "error": "", "sample_rate": None, "channels": None,
           "duration_seconds": None, "audio_hash": ""}
    try:
        samples, sample_rate = decode_native(path)
    except AudioDecodeError as error:
        return row | {"error": error.reason}
    decoded = {"sample_rate": int(sample_rate), "channels": int(samples.shape[1]),
               "duration_seconds": samples.shape[0] / sample_rate}
    try:
        check_length(path, samples.shape[0], sample_rate, min_seconds)
    except AudioDecodeError as error:
        return row | decoded | {"error": error.reason}
    # Rate and shape are hashed too: the same samples at another rate are another recording.
    digest = hashlib.sha256(f"{sample_rate}:{samples.shape[1]}:".encode())
    digest.update(np.ascontiguousarray(samples, dtype="<f4").tobytes())
    return row | decoded | {"decodable": True, "audio_hash": digest.hexdigest()}


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def manifest_path(root: str | Path) -> Path:
    """Where the manifest of the data folder ``root`` is kept: in the cache, keyed by its path."""
    resolved = Path(root).expanduser().resolve()
    key = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return cache_root() / "manifests" / f"{resolved.name or 'root'}-{key}.csv"


def write_manifest(manifest: pd.DataFrame, path: Path) -> Path:
    """Write ``manifest`` as CSV atomically: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".csv")
    try:
        with os.fdopen(descriptor, "w", newline="") as handle:
            manifest.to_csv(handle, index=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_manifest(root: str | Path) -> pd.DataFrame | None:
    """The manifest of an earlier verify of ``root``, or None where absent or stale.

    Stale means a file was added or removed, or changed size or mtime, since; only ``stat`` is
    used, so this is cheap enough for every run.
    """
    import pandas as pd

    path = manifest_path(root)
    if not path.is_file():
        return None
    try:
        manifest = _typed(pd.read_csv(path, dtype=str, keep_default_na=False))
        current = {track.relative_path: track.path.stat() for track in discover_tracks(root)}
    except (OSError, ValueError, KeyError, BenchmarkError) as error:
        log.info("data manifest %s is unusable (%s); re-verify is advised", path, _reason(error))
        return None
    recorded = {row.relative_path: (row.size_bytes, row.mtime_ns) for row in manifest.itertuples()}
    if recorded != {name: (stat.st_size, stat.st_mtime_ns) for name, stat in current.items()}:
        log.info("data manifest %s is stale (files added, removed or changed since); re-verify is advised: "
                 "python -m benchmark data verify %s", path, root)
        return None
    return manifest


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The manifest's column types, the same whether built here or read back from CSV."""
    frame = frame[list(COLUMNS)].copy()
    for column in _MAYBE_EMPTY:
        frame[column] = frame[column].where(frame[column] != "", None)
    if frame["decodable"].dtype != bool:
        frame["decodable"] = frame["decodable"].map({"True": True, "False": False})
    frame = frame.astype(COLUMNS)
    return frame.sort_values("relative_path", ignore_index=True)


def duplicate_groups(manifest: pd.DataFrame) -> list[list[str]]:
    """Sorted groups (two or more) of decodable files with identical decoded audio."""
    groups = defaultdict(list)
    for row in manifest[manifest["decodable"]].itertuples():
        groups[row.audio_hash].append(row.relative_path)
    return sorted(sorted(paths) for paths in groups.values() if len(paths) > 1)


def duplicates_across_splits(groups: Sequence[Sequence[str]], relative_paths: Sequence[str],
                             plan: SplitPlan) -> list[CrossSplitDuplicate]:
    """Per split of ``plan`` (one per fold), the duplicate groups whose members it puts in
    different splits; ``relative_paths[i]`` is the track at index ``i`` of the plan's arrays.
    Members outside ``relative_paths`` or in no split are left out."""
    index_of = {path: index for index, path in enumerate(relative_paths)}
    found = []
    for split in plan.splits:
        where = split.assignment(len(relative_paths))
        for group in groups:
            members = [(path, where[index_of[path]]) for path in group
                       if path in index_of and where[index_of[path]] is not None]
            if len({name for _, name in members}) > 1:
                found.append(CrossSplitDuplicate(split.fold, members))
    return found


def _counted(values: pd.Series, unit: str) -> str:
    counts = Counter(int(value) for value in values.dropna())
    return ", ".join(f"{value}{unit} ({n} file{'s' * (n != 1)})" for value, n in sorted(counts.items())) or "-"
