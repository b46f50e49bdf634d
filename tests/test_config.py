"""Experiment files: typed, validated, overridable; errors name the offending key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.config import PAPER_MODELS, list_experiments, load_experiment
from benchmark.data.features import FeatureParams
from benchmark.errors import BenchmarkError


def write_experiment(tmp_path, text: str):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


#: Each bundled experiment's effective configuration (every section, and per model its
#: effective training settings and resolved hyperparameters) as it was before experiments
#: could extend one another: the rewrite with ``extends`` must not change any of it.
EFFECTIVE_EXPERIMENTS = json.loads((Path(__file__).parent / "data" / "effective_experiments.json").read_text())


@pytest.mark.parametrize("name", sorted(list_experiments()))
def test_bundled_experiments_load(name):
    config = load_experiment(name)
    assert config.name == name
    # Every experiment runs the study's networks, or at least its best one for reference.
    assert set(PAPER_MODELS) <= set(config.run.models) or "cnn2d" in config.run.models


def test_every_bundled_experiment_is_covered_by_the_snapshot():
    assert sorted(list_experiments()) == sorted(EFFECTIVE_EXPERIMENTS)


@pytest.mark.parametrize("name", sorted(EFFECTIVE_EXPERIMENTS))
def test_bundled_experiments_effective_config_is_unchanged(name):
    from benchmark.unit import model_setup

    config = load_experiment(name)
    effective = config.model_dump(mode="json")
    del effective["model"], effective["description"]
    effective["effective_models"] = {
        model: {"training": model_setup(config, model).training.model_dump(mode="json"),
                "hyperparameters": json.loads(json.dumps(dict(model_setup(config, model).hyperparameters)))}
        for model in config.run.models
    }
    assert effective == EFFECTIVE_EXPERIMENTS[name]


def test_kfold_extends_default_and_states_only_its_differences():
    import tomllib

    from benchmark.config import EXPERIMENTS_DIR

    kfold, default = (tomllib.loads((EXPERIMENTS_DIR / f"{name}.toml").read_text()) for name in ("kfold", "default"))
    assert kfold.pop("extends") == "default"
    for section, values in kfold.items():
        if isinstance(values, dict):  # no key repeats what default.toml already says
            assert not {key: value for key, value in values.items()
                        if default.get(section, {}).get(key) == value}, section


def test_extends_merges_key_by_key_and_never_inherits_name_or_description(tmp_path):
    (tmp_path / "base.toml").write_text(
        'name = "base"\ndescription = "the base"\n[train]\nepochs = 4\nbatch_size = 8\n'
        '[model.cnn2d]\nfilters = [4, 4]\n')
    child = write_experiment(tmp_path, 'extends = "base.toml"\n[train]\nepochs = 2\n'
                                       '[model.cnn2d]\nkernel_size = 3\n')
    config = load_experiment(child)
    assert (config.name, config.description) == ("exp", "")
    assert (config.train.epochs, config.train.batch_size) == (2, 8)
    assert config.model_settings("cnn2d").hyperparameters == {"filters": (4, 4), "kernel_size": 3}


def test_extends_takes_a_bundled_name_and_rejects_cycles_and_unknown_parents(tmp_path):
    config = load_experiment(write_experiment(tmp_path, 'extends = "smoke"\n[train]\nepochs = 2\n'))
    assert config.data.synth_clips_per_genre == 8 and config.train.epochs == 2
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(BenchmarkError, match="makes a cycle"):
        load_experiment(tmp_path / "a.toml")
    with pytest.raises(BenchmarkError, match="experiment file not found: nowhere"):
        load_experiment(write_experiment(tmp_path, 'extends = "nowhere"\n'))
    with pytest.raises(BenchmarkError, match="--set cannot change extends"):
        load_experiment("smoke", ["extends=paper"])


def test_paper_experiment_is_the_study_as_published():
    config = load_experiment("paper")
    params = FeatureParams.from_config(config)
    assert params.shape == (1025, 1320)
    assert params.n_samples == 675_328
    assert config.training_for("fcnn").epochs == 100
    assert config.training_for("cnn2d").epochs == 50
    assert config.train.batch_size == 32 and config.train.learning_rate == 1e-3
    assert (config.split.test_fraction, config.split.valid_fraction) == (0.3, 0.2)
    assert config.data.source == "directory" and config.data.directory is None


def test_file_overrides_only_what_it_names(tmp_path):
    config = load_experiment(write_experiment(tmp_path, "[train]\nepochs = 3\n"))
    assert config.train.epochs == 3
    assert config.train.batch_size == 32
    # No hidden per-model values: [train] applies to every model that does not set its own.
    assert config.training_for("cnn2d").epochs == 3
    assert config.name == "exp"


def test_a_models_own_training_value_wins_over_train_wherever_each_was_set():
    config = load_experiment("paper", ["train.epochs=5"])
    assert config.training_for("fcnn").epochs == 5
    assert config.training_for("cnn2d").epochs == 50  # written in paper.toml's [model.cnn2d]
    assert load_experiment("paper", ["model.cnn2d.epochs=5"]).training_for("cnn2d").epochs == 5
    assert load_experiment("default", ["train.epochs=5"]).training_for("cnn2d").epochs == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[features]\nnfft = 1024\n", "unknown key 'features.nfft'"),
        ("[train]\nepochs = 'ten'\n", "train.epochs: input should be a valid integer"),
        ("[train]\nepochs = 0\n", "train.epochs: input should be greater than 0"),
        ("[split]\ntest_fraction = 1.5\n", "split.test_fraction"),
        ("[features]\nrepresentation = 'cqt'\n", "features.representation"),
        ("[run]\nmodels = ['fcnn', 'resnet']\n", "unknown model 'resnet'"),
        ("[model.cnn2d]\nfilterz = [4, 4]\n", "model.cnn2d: unknown hyperparameter"),
        ("[model.crnn]\nlstm_units = 'many'\n", "'lstm_units' of model 'crnn' must be int"),
        ("[model.vgg]\nepochs = 3\n", "model.vgg: unknown model 'vgg'"),
        ("[train\n", "not valid TOML"),
    ],
)
def test_mistakes_fail_naming_the_key(tmp_path, text, message):
    with pytest.raises(BenchmarkError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_experiment(write_experiment(tmp_path, text))


def test_set_overrides_parse_toml_values(tmp_path):
    config = load_experiment(
        write_experiment(tmp_path, ""),
        ["train.epochs=7", "model.cnn1d.filters=[4, 8, 16]", "features.representation=logmel",
         "model.cnn2d.learning_rate=1e-4"],
    )
    assert config.train.epochs == 7
    assert config.model_settings("cnn1d").hyperparameters == {"filters": (4, 8, 16)}
    assert config.features.representation == "logmel"
    assert config.training_for("cnn2d").learning_rate == 1e-4
    assert config.training_for("cnn2d").epochs == 7


@pytest.mark.parametrize(
    ("override", "message"),
    [("train.epochs", "--set expects section.key=value"),
     ("train.epochs=many", "train.epochs"),
     ("train.epochs.x=1", "'epochs' is a value")],
)
def test_bad_set_overrides(tmp_path, override, message):
    with pytest.raises(BenchmarkError, match=message):
        load_experiment(write_experiment(tmp_path, "[train]\nepochs = 2\n"), [override])


def test_set_mistakes_name_set_and_file_mistakes_name_the_file(tmp_path):
    with pytest.raises(BenchmarkError, match=r"with --set train.epochs=0: train.epochs"):
        load_experiment("smoke", ["train.epochs=0"])
    broken = write_experiment(tmp_path, "[train]\nepochs = 0\n")
    with pytest.raises(BenchmarkError, match=r"exp.toml: train.epochs") as raised:
        load_experiment(broken, ["train.batch_size=8"])
    assert "--set" not in str(raised.value)


def test_cli_flags_win(tmp_path):
    config = load_experiment("smoke", data_dir=tmp_path, seeds=[3, 4])
    assert config.data.source == "directory" and config.data.directory == str(tmp_path)
    assert config.run.seeds == (3, 4)


def test_unknown_experiment_lists_the_bundled_ones():
    with pytest.raises(BenchmarkError, match="experiment file not found: nope.*default.*paper.*smoke"):
        load_experiment("nope")


def test_flat_config_is_dotted_and_complete():
    flat = load_experiment("smoke").flat()
    assert flat["features.representation"] == "logmel"
    assert flat["train.epochs"] == 1
    assert "split.seed" in flat and "train.learning_rate" in flat


def test_protocol_experiments_say_what_the_issue_asks():
    kfold = load_experiment("kfold")
    assert (kfold.split.protocol, kfold.split.folds, kfold.features.segment_seconds) == ("kfold", 5, 3.0)
    assert kfold.run.seeds == (0, 1, 2) and kfold.data.source == "synthetic"
    filtered = load_experiment("paper-filtered", data_dir="/data/genres", split_dir="/lists")
    assert (filtered.split.protocol, filtered.split.split_dir) == ("files", "/lists")
    assert FeatureParams.from_config(filtered).shape == (1025, 1320)
    assert load_experiment("paper").split.protocol == "paper"


@pytest.mark.parametrize("override, message", [
    ('split.protocol="random"', "split.protocol"),
    ("split.folds=1", "split.folds"),
    ("features.segment_hop_seconds=1.0", "segment_hop_seconds needs segment_seconds"),
    ("features.segment_seconds=0", "features.segment_seconds"),
    ('features.last_segment="keep"', "features.last_segment"),
    ('features.normalize="minmax"', "features.normalize"),
    ('evaluate.vote="max"', "evaluate.vote"),
    ("run.seeds=[]", "run.seeds must not be empty"),
    ("run.seeds=[1, 1]", "run.seeds lists a value twice"),
])
def test_protocol_settings_are_validated(override, message):
    with pytest.raises(BenchmarkError, match=message):
        load_experiment("smoke", [override])


def test_seeds_flag_and_split_dir_flag_win():
    config = load_experiment("kfold", seeds=[7, 8], split_dir="lists")
    assert config.run.seeds == (7, 8)
    assert (config.split.protocol, config.split.split_dir) == ("files", "lists")
