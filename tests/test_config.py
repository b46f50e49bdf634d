"""Experiment files: typed, validated, overridable; errors name the offending key."""

from __future__ import annotations

import pytest

from benchmark.config import PAPER_MODELS, list_experiments, load_experiment
from benchmark.data.prepare import feature_params
from benchmark.errors import BenchmarkError


def write_experiment(tmp_path, text: str):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["default", "smoke", "paper", "kfold", "paper-filtered"])
def test_bundled_experiments_load(name):
    config = load_experiment(name)
    assert config.name == name
    assert set(config.run.models) == set(PAPER_MODELS)
    assert name in list_experiments()


def test_paper_experiment_is_the_study_as_published():
    config = load_experiment("paper")
    params = feature_params(config)
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
    assert config.training_for("cnn2d").epochs == 50  # the study's per-model default stays
    assert config.name == "exp"


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
    assert config.training_for("cnn2d").epochs == 50


@pytest.mark.parametrize(
    ("override", "message"),
    [("train.epochs", "--set expects section.key=value"),
     ("train.epochs=many", "train.epochs"),
     ("train.epochs.x=1", "'epochs' is a value")],
)
def test_bad_set_overrides(tmp_path, override, message):
    with pytest.raises(BenchmarkError, match=message):
        load_experiment(write_experiment(tmp_path, "[train]\nepochs = 2\n"), [override])


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
    assert flat["model.cnn2d.epochs"] == 1
    assert "split.seed" in flat and "train.learning_rate" in flat


def test_protocol_experiments_say_what_the_issue_asks():
    kfold = load_experiment("kfold")
    assert (kfold.split.protocol, kfold.split.folds, kfold.features.segment_seconds) == ("kfold", 5, 3.0)
    assert kfold.run.seeds == (0, 1, 2) and kfold.data.source == "synthetic"
    filtered = load_experiment("paper-filtered", data_dir="/data/genres", split_dir="/lists")
    assert (filtered.split.protocol, filtered.split.split_dir) == ("files", "/lists")
    assert feature_params(filtered).shape == (1025, 1320)
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
