"""Peak memory of a command's whole process tree: ``python -m benchmark.profiling.tree_memory CMD...``.

Why not ``/usr/bin/time -v``: it reports the largest process it waited for, and a batch's units
run in processes forked by multiprocessing's fork server, which ``time`` never waits for; it
reports the batch's own process alone. This samples every process under the command (every
``SAMPLE_SECONDS``) from ``/proc/<pid>/smaps_rollup`` and prints, once the command ends, the
peak over time of:

- the sum of PSS (proportional set size: a page shared by n processes counts 1/n in each), the
  tree's real footprint;
- the sum of RSS (shared pages counted in every process that maps them);
- the sum of anonymous memory (what no file backs: arrays, tensors, the heap);
- the largest single process's RSS and anonymous memory.

Linux only. Sampling can miss a peak shorter than the interval. The command's exit status is
this command's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.25
_FIELDS = {"Rss:": "rss", "Pss:": "pss", "Anonymous:": "anonymous"}


@dataclass
class TreePeak:
    """Peaks over the command's life, in bytes, and how many processes the tree held at most."""

    seconds: float = 0.0
    exit_status: int = 0
    pss: int = 0
    rss: int = 0
    anonymous: int = 0
    largest_rss: int = 0
    largest_anonymous: int = 0
    processes: int = 0

    def add(self, sample: list[dict[str, int]]) -> None:
        """Fold one sample (one dict of byte counts per live process) into the peaks."""
        self.pss = max(self.pss, sum(process["pss"] for process in sample))
        self.rss = max(self.rss, sum(process["rss"] for process in sample))
        self.anonymous = max(self.anonymous, sum(process["anonymous"] for process in sample))
        self.largest_rss = max([self.largest_rss, *(process["rss"] for process in sample)])
        self.largest_anonymous = max([self.largest_anonymous, *(process["anonymous"] for process in sample)])
        self.processes = max(self.processes, len(sample))

    def describe(self) -> str:
        gb = 1e9
        return (f"process tree: {self.seconds:.1f} s, exit status {self.exit_status}, up to {self.processes} "
                f"processes; peak PSS {self.pss / gb:.2f} GB, RSS {self.rss / gb:.2f} GB, anonymous "
                f"{self.anonymous / gb:.2f} GB; largest process RSS {self.largest_rss / gb:.2f} GB, anonymous "
                f"{self.largest_anonymous / gb:.2f} GB")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (children of every thread, recursively)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                todo.extend(int(child) for child in Path(f"/proc/{current}/task/{task}/children").read_text().split())
        except OSError:  # it ended meanwhile
            continue
    return found


def process_memory(pid: int) -> dict[str, int] | None:
    """RSS, PSS and anonymous bytes of one process, or None once it has ended."""
    values = dict.fromkeys(_FIELDS.values(), 0)
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                key = _FIELDS.get(line.split(maxsplit=1)[0])
                if key:
                    values[key] = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return values


def measure(command: list[str], *, interval: float = SAMPLE_SECONDS) -> TreePeak:
    """Run ``command`` to its end, sampling its process tree; the peaks."""
    peak = TreePeak()
    started = time.perf_counter()
    process = subprocess.Popen(command)
    try:
        while process.poll() is None:
            peak.add([memory for pid in descendants(process.pid) if (memory := process_memory(pid)) is not None])
            time.sleep(interval)
    except KeyboardInterrupt:
        try:  # a Ctrl-C reached the command too (same process group): let it stop on its own
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:  # only this process was signalled: pass it on
            process.send_signal(signal.SIGINT)
            process.wait()
        raise
    peak.seconds, peak.exit_status = time.perf_counter() - started, process.returncode
    return peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.profiling.tree_memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", help="also write the peaks to FILE as JSON (bytes)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("give the command to measure, e.g. -- python -m benchmark run --all")
    if not Path("/proc/self/smaps_rollup").exists():
        print("error: needs Linux's /proc/<pid>/smaps_rollup", file=sys.stderr)
        return 2
    try:
        peak = measure(command)
    except (FileNotFoundError, PermissionError) as error:
        print(f"error: cannot run {command[0]}: {error.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the command, in the same process group, was interrupted too and has ended
        print("error: interrupted", file=sys.stderr)
        return 130
    print(peak.describe(), file=sys.stderr)
    if options.json:
        Path(options.json).write_text(json.dumps({"command": command, **asdict(peak)}, indent=2))
    return peak.exit_status


if __name__ == "__main__":
    sys.exit(main())
