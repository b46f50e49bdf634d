"""From study to result: study plots, and the winner as an experiment file ``run`` accepts."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from benchmark.config import ExperimentConfig
from benchmark.errors import BenchmarkError
from benchmark.redaction import redact

log = logging.getLogger(__name__)

#: Study-level figures: (artifact name, optuna.visualization.matplotlib function name).
STUDY_PLOTS = (
    ("optimization_history.png", "plot_optimization_history"),
    ("param_importances.png", "plot_param_importances"),
    ("parallel_coordinate.png", "plot_parallel_coordinate"),
    ("slice.png", "plot_slice"),
)


def study_figures(study):
    """Yield (artifact name, Figure) for each study plot Optuna can draw from the trials so far.

    Some need two or more complete trials (importances, for one); those are skipped with a note.
    """
    import matplotlib

    matplotlib.use("Agg")
    import optuna.visualization.matplotlib as optuna_plots

    # matplotlib notes at INFO that list-valued choices are drawn as categories: they are.
    logging.getLogger("matplotlib.category").setLevel(logging.WARNING)

    for name, function in STUDY_PLOTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning on every call
            try:
                drawn = getattr(optuna_plots, function)(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as error:
                log.info("no %s: %s", name, error)
                continue
        axes = drawn.flat[0] if hasattr(drawn, "flat") else drawn
        figure = axes.figure
        figure.set_size_inches(10, 6)
        yield name, figure


def write_tuned_experiment(
    config: ExperimentConfig, model_name: str, best_params: dict[str, Any], *, study_name: str,
    storage: str, trial_number: int, value: float, folder: Path,
) -> Path:
    """Write ``folder/tuned-<model>.toml``: the experiment with the best trial's values filled in.

    ``storage`` is named in the file's header comment, its password redacted: the file is meant
    to be shared and committed.
    """
    import tomli_w

    raw = config.model_dump(mode="json", exclude={"tuning"})
    raw["name"] = f"tuned-{model_name}"
    raw["description"] = (
        f"{model_name} with the best parameters of study {study_name!r} "
        f"(trial {trial_number}, {config.tuning.metric} {value:.4f}), on {config.name}'s setup"
    )
    raw["run"]["models"] = [model_name]
    settings = {key: value for key, value in raw["model"].get(model_name, {}).items() if value is not None}
    settings.update({key: list(v) if isinstance(v, tuple) else v for key, v in best_params.items()})
    raw["model"] = {model_name: settings}
    from benchmark.models import get_model_spec

    # The training settings the model uses (none for a classical learner), pinned as they ran.
    for key in get_model_spec(config.architecture_of(model_name)).adapter.training_keys:
        settings.setdefault(key, getattr(config.training_for(model_name), key))
    header = (
        f"# Written by `python -m benchmark tune --model {model_name}` from study {study_name!r}\n"
        f"# in {redact(storage)}. Retrain the winner and score the test split once with:\n"
        f"#   python -m benchmark run --model {model_name} --experiment {folder / f'tuned-{model_name}.toml'}\n"
    )
    path = folder / f"tuned-{model_name}.toml"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(header + tomli_w.dumps(_without_none(raw)))
    except OSError as error:
        raise BenchmarkError(f"cannot write {path}: {error}") from None
    return path


def _without_none(node: Any) -> Any:
    # TOML has no null: an unset value is simply left out, so the default applies again.
    if isinstance(node, dict):
        return {key: _without_none(value) for key, value in node.items() if value is not None}
    return node
