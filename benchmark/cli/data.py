"""Verbs about data sets: synth (write the embedded synthetic set), verify, download, features."""

from __future__ import annotations

from benchmark.cli.features import add_features
from benchmark.cli.options import add_split_and_override_options


def add_data(verbs) -> None:
    data = verbs.add_parser("data", help="data set tools", description="Data set tools.")
    tools = data.add_subparsers(dest="tool", required=True, metavar="TOOL")
    synth = tools.add_parser(
        "synth",
        help="write the synthetic GTZAN-shaped data set",
        description="Write a deterministic synthetic data set shaped like GTZAN: "
        "DIR/<genre>/<genre>.NNNNN.wav, 22050 Hz mono 16-bit.",
    )
    synth.add_argument("--out", required=True, metavar="DIR", help="output folder")
    synth.add_argument("--clips-per-genre", type=int, default=100, metavar="N", help="(default: %(default)s)")
    synth.add_argument("--seconds", type=float, default=30.0, metavar="S", help="clip length (default: %(default)s)")
    synth.add_argument("--sample-rate", type=int, default=22050, metavar="HZ", help="(default: %(default)s)")
    synth.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    synth.add_argument("--workers", type=int, default=None, metavar="N", help="processes (default: one per core)")
    synth.set_defaults(handler=_synth)
    add_verify(tools)
    add_download(tools)
    add_features(tools)


def _synth(args) -> int:
    import time

    from benchmark.data.synth import write_dataset

    started = time.perf_counter()
    out = write_dataset(
        args.out,
        clips_per_genre=args.clips_per_genre,
        seconds=args.seconds,
        sample_rate=args.sample_rate,
        seed=args.seed,
        workers=args.workers,
    )
    print(f"synthetic data set in {out} ({time.perf_counter() - started:.1f} s)")
    return 0


def add_verify(tools) -> None:
    """``data verify DIR``: see :mod:`benchmark.data.verify`."""
    verify = tools.add_parser(
        "verify",
        help="check a data set: counts, formats, undecodable files, duplicates",
        description="Decode every audio file under DIR and report per-genre counts and durations, sample "
        "rates and channels, the files runs would skip (undecodable, truncated, shorter than "
        "data.min_seconds), genre names that metric names spell otherwise, and exact duplicates "
        "(identical decoded audio), warning where duplicates fall in different splits of the experiment's "
        "protocol. Writes a manifest CSV that runs reuse. Exit status: 0 clean, 1 any of these found or the "
        "split check not possible, 2 user error.",
    )
    verify.add_argument("dir", metavar="DIR", help="folder-per-genre audio tree")
    verify.add_argument("--experiment", default="paper", metavar="NAME_OR_FILE",
                        help="experiment whose [split] decides the protocol checked (default: %(default)s)")
    add_split_and_override_options(verify)
    verify.add_argument("--manifest", metavar="PATH", help="also write the manifest CSV to PATH")
    verify.add_argument("--workers", type=int, default=0, metavar="N",
                        help="processes (default: one per core; 1: in process)")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify.set_defaults(handler=_verify)


def _verify(args) -> int:
    from benchmark.cli.output_paths import check_output_file
    from benchmark.config import load_experiment
    from benchmark.data.split import read_split_lists
    from benchmark.data.verify import verify_dataset

    if args.manifest is not None:
        check_output_file(args.manifest, "--manifest", parents_made=True)  # before decoding every file
    config = load_experiment(args.experiment, args.overrides, data_dir=args.dir, split_dir=args.split_dir,
                             check_models=False)  # verify never trains: no Keras import
    if config.split.split_dir:
        # A named split folder that is missing or incomplete is a user error, not a finding.
        read_split_lists(config.split.split_dir)
    report = verify_dataset(args.dir, split_config=config.split, workers=args.workers,
                            progress=not args.no_progress, copy_to=args.manifest,
                            min_seconds=config.data.min_seconds)
    print("\n".join(report.summary_lines()))
    return report.exit_status


def add_download(tools) -> None:
    """``data download gtzan --out DIR``: see :mod:`benchmark.data.download`."""
    download = tools.add_parser(
        "download",
        help="download and extract GTZAN",
        description="Download GTZAN's genres.tar.gz (resuming a partial download), check its md5 "
        "and extract it safely to DIR/genres. The URL is --url, else $GENRE_BENCHMARK_GTZAN_URL, "
        "else GTZAN's canonical address.",
    )
    download.add_argument("dataset", choices=("gtzan",), help="the data set")
    download.add_argument("--out", required=True, metavar="DIR", help="output folder (gets genres/)")
    download.add_argument("--url", metavar="URL", help="where to download the archive from")
    download.add_argument("--md5", metavar="HEX", help="the archive's expected md5 (default: GTZAN's)")
    download.add_argument("--no-progress", action="store_true", help="no progress bar")
    download.set_defaults(handler=_download)


def _download(args) -> int:
    import shlex

    from benchmark.data.download import GTZAN_MD5, download_gtzan

    genres = download_gtzan(args.out, url=args.url, md5=args.md5 or GTZAN_MD5, progress=not args.no_progress)
    print(f"GTZAN is in {genres}")
    print(f"use it with: python -m benchmark run --all --experiment paper --data-dir {shlex.quote(str(genres))}")
    return 0
