"""Checks of the paths a verb writes to (``--out``, ``--manifest``), before any slow work.

A folder where a file is to go, or a file where a folder is (``afile/sub``), would otherwise
surface after minutes of work as ``IsADirectoryError`` or ``NotADirectoryError`` tracebacks,
with a temporary file left behind. Each check is one :class:`BenchmarkError` naming the option,
the path and what is in the way.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import BenchmarkError


def check_output_file(path: str | Path, option: str, *, parents_made: bool = False) -> Path:
    """``path`` as a file to write: not a folder, under a folder (made if ``parents_made``)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise BenchmarkError(f"{option} {path} is a folder: give the name of the file to write")
    _check_parents(path, option)
    if not parents_made and not path.parent.is_dir():
        raise BenchmarkError(f"no such folder for {option}: {path.parent}")
    return path


def check_output_folder(path: str | Path, option: str) -> Path:
    """``path`` as a folder to write into (made if missing): not a file, not under a file."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise BenchmarkError(f"{option} {path} is a file, not a folder: give a folder to write into")
    _check_parents(path, option)
    return path


def _check_parents(path: Path, option: str) -> None:
    """The nearest existing folder above ``path`` must be one: ``afile/m.csv`` cannot be made."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BenchmarkError(f"{option} {path}: {parent} is a file, not a folder")
            return
