"""The figures of ``scripts/gpu-figures.sh`` as one Markdown page: ``python gpu_figures_summary.py OUT``.

Reads only what the script left in OUT (steps.tsv, the profiles' JSON, the logs, nvidia-smi's
samples) and prints the tables the README's "On a GPU" section and issue 23 ask for: per
network at the paper input, harness and bare steady s/epoch, compile time and GPU busy
fraction; the study's full protocol extrapolated from them; the default run's wall time and
out-of-memory lines; mixed precision and the other feeds. A missing file is a line saying so.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

#: The study's training clips: 1,000 clips, 30% held out for test, 20% of the rest for validation.
PAPER_TRAINING_CLIPS = 560
#: The study's epochs per network (paper.toml: 100, cnn2d 50).
PAPER_EPOCHS = {"cnn2d": 50}
PAPER_DEFAULT_EPOCHS = 100
OUT_OF_MEMORY = re.compile(r"out of memory|OUT_OF_MEMORY|RESOURCE_EXHAUSTED", re.IGNORECASE)


def main(out: Path) -> None:
    steps = _steps(out)
    print(f"# GPU figures ({out})\n")
    print(_read(out / "versions.txt").strip() or "versions: not recorded", "\n")
    print("| step | exit | seconds |\n| --- | ---: | ---: |")
    for name, (code, seconds) in steps.items():
        print(f"| {name} | {code} | {seconds} |")
    _profile_section(out)
    _run_section(out, steps)
    for kind in ("precision", "feed"):
        _settings_section(out, kind)
    _samples_section(out)


def _profile_section(out: Path) -> None:
    profile = _json(out / "profile-auto.json")
    print("\n## Paper input, feed auto (profile-auto)\n")
    if profile is None:
        print("no profile-auto.json: see profile-auto.log")
        return
    print(f"device {profile['machine'].get('device')}, {profile['machine']['backend']} "
          f"{profile['machine']['backend_version']}, Keras {profile['machine']['keras']}, "
          f"commit {profile['machine']['git_commit'][:12]}, {profile['clips']} clips, {profile['epochs']} epochs\n")
    feeds = sorted(set(re.findall(r"(\S+): inputs fed (.*?) \(feed", _read(out / "profile-auto.log"))))
    if feeds:
        print("feeds chosen:", "; ".join(f"{model} {how}" for model, how in feeds), "\n")
    print("| network | harness steady s/epoch | bare steady s/epoch | harness / bare | harness compile s | "
          "bare compile s | GPU busy, steady (harness / bare) | study's protocol, extrapolated |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    total = 0.0
    for name, model in profile["models"].items():
        bare = profile["floors"]["bare_fit"].get(name, {})
        steady = model.get("steady_seconds_per_epoch")
        protocol = None
        if steady is not None:
            epochs = PAPER_EPOCHS.get(name, PAPER_DEFAULT_EPOCHS)
            protocol = (model["compile_seconds"] or 0) + steady * epochs * PAPER_TRAINING_CLIPS / profile["clips"]
            total += protocol
        print(f"| {name} | {_f(steady)} | {_f(bare.get('steady_seconds_per_epoch'))} | "
              f"{_f(profile['ratios']['steady'].get(name), 'x')} | {_f(model.get('compile_seconds'))} | "
              f"{_f(bare.get('compile_seconds'))} | {_busy(model)} / {_busy(bare)} | "
              f"{_f(protocol and protocol / 60, ' min')} |")
    print(f"\nthe study's full protocol (100 epochs, cnn2d 50, {PAPER_TRAINING_CLIPS} training clips), extrapolated "
          f"from the steady epochs and compile times above: {total / 60:.1f} min of training on this device")


def _run_section(out: Path, steps: dict) -> None:
    print("\n## Default experiment, `run --all --backend jax`\n")
    for name in ("run-default", "run-default-rest"):
        log = _read(out / f"{name}.log")
        if not log:
            print(f"- {name}: no log")
            continue
        oom = [line for line in log.splitlines() if OUT_OF_MEMORY.search(line)]
        device = re.findall(r"device: (.*)", log)
        probes = log.count("Unable to initialize backend")
        code, seconds = steps.get(name, ("?", "?"))
        print(f"- {name}: exit {code}, wall {seconds} s, out-of-memory lines: {len(oom)}, device line(s): "
              f"{device or 'none'}, backend probe lines: {probes}")
        table = log[log.rfind("model  seed"):] if "model  seed" in log else ""
        if table:
            print("\n```\n" + "\n".join(table.splitlines()[:25]) + "\n```")


def _settings_section(out: Path, kind: str) -> None:
    files = sorted(out.glob(f"profile-{kind}-*.json"))
    logs = sorted(out.glob(f"{kind}-*.log"))
    if not files and not logs:
        return
    print(f"\n## {kind} settings (harness alone)\n")
    print("| setting | network | first epoch s | steady s/epoch | GPU busy, steady | non-finite loss in log |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for log in logs:
        setting = log.stem.removeprefix(f"{kind}-")
        profile = _json(out / f"profile-{kind}-{setting}.json")
        text = _read(log)
        nan = "yes" if re.search(r"loss (nan|inf)|non-finite|NaN", text) else "no"
        if profile is None:
            print(f"| {setting} | (failed: see {log.name}) | | | | {nan} |")
            continue
        for name, model in profile["models"].items():
            print(f"| {setting} | {name} | {_f(model.get('first_epoch_seconds'))} | "
                  f"{_f(model.get('steady_seconds_per_epoch'))} | {_busy(model)} | {nan} |")


def _samples_section(out: Path) -> None:
    path = out / "nvidia-smi-samples.csv"
    if not path.exists():
        return
    rows = list(csv.reader(path.read_text().splitlines()))[1:]
    busy = [int(row[1].strip().split()[0]) for row in rows if len(row) > 1 and row[1].strip()[:1].isdigit()]
    if busy:
        print(f"\nnvidia-smi, every second over the whole script: {len(busy)} samples, idle (0%) in "
              f"{sum(value == 0 for value in busy)}, over 90% in {sum(value > 90 for value in busy)}")


def _steps(out: Path) -> dict[str, tuple[str, str]]:
    rows = [line.split("\t") for line in _read(out / "steps.tsv").splitlines()[1:]]
    return {row[0]: (row[1], row[2]) for row in rows if len(row) >= 3}


def _busy(values: dict) -> str:
    busy = values.get("gpu_busy")
    if not busy:
        return "n/a"
    value = busy["steady"] if busy["steady"] is not None else busy["fit"]
    return "?" if value is None else f"{value:.0%}"


def _f(value, unit: str = "") -> str:
    return "" if value is None else f"{value:.2f}{unit}"


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


if __name__ == "__main__":
    main(Path(sys.argv[1]))
