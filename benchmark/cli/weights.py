"""``weights fetch musicnn [--from FILE]``: a pretrained network's weights, into the cache, once.

Runs need no such step (the first use of a ``musicnn`` representation fetches by itself); this
verb fetches ahead of time, or takes a wheel obtained another way (an offline machine).
"""

from __future__ import annotations

#: The pretrained weights this verb knows.
PRETRAINED = ("musicnn",)


def add_weights(verbs) -> None:
    weights = verbs.add_parser(
        "weights", help="fetch pretrained networks' weights into the cache",
        description="Pretrained networks' weights: fetched once into the cache folder, checked against "
        "pinned hashes; runs fetch them on first use anyway.",
    )
    tools = weights.add_subparsers(dest="tool", required=True, metavar="TOOL")
    fetch = tools.add_parser(
        "fetch", help="fetch a pretrained network's weights",
        description="musicnn: `pip download --no-deps musicnn==0.1.0` (your pip index and mirror settings "
        "apply), check the wheel's sha256, extract the MSD_musicnn and MTT_musicnn checkpoints into the cache "
        "and convert them to .npz. Nothing is fetched when the cache already holds them.",
    )
    fetch.add_argument("name", choices=PRETRAINED, help="the pretrained network")
    fetch.add_argument("--from", dest="wheel", metavar="FILE",
                       help="use this musicnn-0.1.0 wheel instead of downloading it (checked all the same)")
    fetch.set_defaults(handler=_fetch)


def _fetch(args) -> int:
    from pathlib import Path

    from benchmark.pretrained import weights

    wheel = Path(args.wheel).expanduser() if args.wheel else None
    if wheel is not None:
        weights.check_wheel(wheel)  # a wrong file is an error even where nothing needs fetching
    if weights.is_fetched():
        print(f"musicnn weights already in {weights.weights_dir()}: nothing fetched")
        return 0
    folder = weights.fetch(wheel)
    print(f"musicnn {weights.VERSION} weights ({', '.join(weights.MODELS)}) -> {folder}")
    return 0
