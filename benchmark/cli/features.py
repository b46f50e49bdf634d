"""``data features DIR --out FILE``: the handcrafted features table of any folder-per-genre tree."""

from __future__ import annotations

import sys


def add_features(tools) -> None:
    features = tools.add_parser(
        "features",
        help="write the handcrafted features table (the public GTZAN table's columns) of a data set",
        description="Compute, for every audio file under DIR, the public GTZAN features table's 57 "
        "statistics (chroma, RMS, spectral centroid/bandwidth/roll-off, zero-crossing rate, harmonic and "
        "percussive parts, tempo, 20 MFCCs; mean and variance) over the whole clip, plus spectral contrast "
        "and tonnetz unless --no-extras, and write them as CSV: filename, length, <columns>, label.",
    )
    features.add_argument("dir", metavar="DIR", help="folder-per-genre audio tree")
    features.add_argument("--out", required=True, metavar="FILE", help="CSV file to write")
    features.add_argument("--no-extras", action="store_true",
                          help="only the public table's 57 columns (no spectral contrast, no tonnetz)")
    features.add_argument("--sample-rate", type=int, default=22050, metavar="HZ",
                          help="decode at this rate (default: %(default)s, GTZAN's)")
    features.add_argument("--workers", type=int, default=0, metavar="N", help="processes (default: one per core)")
    features.add_argument("--no-progress", action="store_true", help="no progress bar")
    features.set_defaults(handler=_features)


def _features(args) -> int:
    from benchmark.cli.output_paths import check_output_file
    from benchmark.data.handcrafted import features_table
    from benchmark.errors import BenchmarkError

    if args.workers < 0 or args.sample_rate < 1:
        raise BenchmarkError("--workers must be 0 or more and --sample-rate positive")
    out = check_output_file(args.out, "--out")  # before the slow part
    table, skipped = features_table(args.dir, sample_rate=args.sample_rate, extras=not args.no_extras,
                                    workers=args.workers, progress=not args.no_progress)
    if table.empty:
        raise BenchmarkError(f"no decodable audio under {args.dir}")
    partial = out.with_name(f".{out.name}.part")
    try:
        table.to_csv(partial, index=False)
        partial.replace(out)  # a reader never sees half a table
    except BaseException:  # a full disk, Ctrl-C: no half-written table left beside the user's files
        partial.unlink(missing_ok=True)
        raise
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"{len(table)} clips x {table.shape[1] - 3} features -> {out}")
    return 0
