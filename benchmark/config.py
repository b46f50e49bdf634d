"""Experiment configuration: typed, frozen, validated; loaded from TOML files.

An experiment file overrides only what differs from the defaults below, which are the study's
own values (full-size STFT input, paper epochs), or from the experiment it ``extends``. Values
merge key by key in this order, later winning: defaults, the extended experiment (itself
resolved the same way), the experiment file, ``--set section.key=value`` overrides, explicit
CLI flags. The merged dictionary is validated once, so an unknown key, a wrong type or an
out-of-range value fails with the key's dotted name before any work starts.

A model's own ``[model.<name>]`` training settings win over ``[train]``, wherever each was set:
``--set train.epochs=5`` changes every model that does not set its own ``epochs``. There are no
per-model values besides those written in experiment files; ``run`` prints each model's
effective values when a batch starts.

This module is also the one home of the allowed values (representations, normalisations,
votes, last-segment policies): the code that implements them imports them from here.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PlainValidator,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_serializer,
    model_validator,
)

from benchmark.backend import BACKENDS
from benchmark.errors import BenchmarkError

PAPER_MODELS = ("fcnn", "cnn1d", "cnn2d", "crnn")
#: ``stft``: the study's dB STFT magnitude (n_fft // 2 + 1 bins); ``logmel``: dB mel power;
#: ``mfcc``: ``n_mfcc`` cepstral coefficients per frame (from the log-mel); ``handcrafted``: one
#: vector of clip statistics (the public GTZAN features table's 57, plus spectral contrast and
#: tonnetz), per clip or per segment (:mod:`benchmark.data.handcrafted`); ``musicnn``: one
#: vector per clip or segment, a pretrained musicnn network's activations averaged over 3 s
#: windows (:mod:`benchmark.pretrained`); ``musicnn-mel``: musicnn's own input frames (16 kHz,
#: 96-band ``log10(10000 x + 1)`` mel), unscaled, for fine-tuning the network.
REPRESENTATIONS = ("stft", "logmel", "mfcc", "handcrafted", "musicnn", "musicnn-mel")
#: Representations that are sequences of frames (bins x frames), as opposed to one vector.
FRAME_REPRESENTATIONS = ("stft", "logmel", "mfcc", "musicnn-mel")
#: The pretrained musicnn networks (``features.musicnn_model``): trained on the Million Song
#: Dataset's or MagnaTagATune's tags.
MUSICNN_MODELS = ("MSD_musicnn", "MTT_musicnn")
#: The musicnn activations an embedding may concatenate (``features.musicnn_layers``).
MUSICNN_LAYERS = ("mean_pool", "max_pool", "penultimate", "taggram")
#: ``per_clip``: each clip's dB spectrogram scaled to [0, 1] (the study); ``standardize``:
#: per-frequency-bin mean and standard deviation, fitted on the training split only.
NORMALIZATIONS = ("per_clip", "standardize")
#: A clip's last segment when shorter than the rest: ``drop`` it, or ``pad`` it to full length.
LAST_SEGMENT_POLICIES = ("drop", "pad")
#: With segments: a clip's label is the ``majority`` of its segments' labels (ties go to the
#: higher mean probability) or the argmax of their ``mean`` probability.
VOTES = ("majority", "mean")
#: Top-level key naming the experiment a file builds on (a bundled name or a path).
EXTENDS_KEY = "extends"
#: Keys of a ``[model.<name>]`` table that configure training; every other key is a hyperparameter.
TRAINING_KEYS = ("epochs", "batch_size", "learning_rate")
#: ``[train]`` settings of every model that trains in epochs; a ``[model.<name>]`` table may
#: override them for that model alone, as it may the :data:`TRAINING_KEYS`.
EPOCH_TRAINING_OPTIONS = ("early_stopping", "mixed_precision", "jit_compile", "feed", "steps_per_execution")
#: How a network's inputs reach it (``[train] feed``): ``memory``, whole arrays that Keras holds
#: as float32 tensors; ``stream``, float32 batches read from the arrays one at a time;
#: ``auto``, streaming only inputs too large to hold (:mod:`benchmark.models.network`).
FEEDS = ("auto", "memory", "stream")


#: A model entry's name: it names runs, MLflow parameter keys and files, so it is kept to
#: characters each of them takes, with no path separator and no ``..``.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MODEL_NAME_RULE = ("letters, digits, '_', '-' and '.' only, starting with a letter or digit, no '..', "
                   "at most 100 characters")
#: The seeds NumPy, Keras and scikit-learn take: 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1


def check_model_name(name: str, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and the rule if ``name`` is not a safe model entry name."""
    if not (isinstance(name, str) and MODEL_NAME_PATTERN.fullmatch(name)) or ".." in name:
        raise ValueError(f"{where}: model name {name!r} is not allowed: use {MODEL_NAME_RULE}")


def _seed(value: Any) -> int:
    # One message with the range, for a seed in a file, in --set or in --seeds alike.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED:
        return value
    raise ValueError(f"a seed is a whole number from 0 to {MAX_SEED} (got {_given(value)})")


#: A random seed (:data:`MAX_SEED`).
Seed = Annotated[int, PlainValidator(_seed)]


def _jit_compile(value: Any) -> str | bool:
    # One message for the union (pydantic would name each branch), and ``1`` is not ``true``.
    if value == "auto" or isinstance(value, bool):
        return value
    raise ValueError(f"should be 'auto', true or false (got {_given(value)})")


#: ``jit_compile``: Keras's own choice (``auto``), or XLA on/off (:class:`TrainConfig`).
JitCompile = Annotated[Literal["auto"] | bool, PlainValidator(_jit_compile)]


def _feed(value: Any) -> str:
    # One message naming the choices, as for jit_compile.
    if isinstance(value, str) and value in FEEDS:
        return value
    raise ValueError(f"should be 'auto', 'memory' or 'stream' (got {_given(value)})")


#: ``feed``: whole arrays, batch by batch, or by size (:class:`TrainConfig`).
Feed = Annotated[Literal[FEEDS], PlainValidator(_feed)]
#: ``[train] mixed_precision``: off (float32), or the 16-bit type layers compute in, or ``auto``
#: (:func:`benchmark.models._precision.precision_policy` picks by device). ``true``, from before
#: bfloat16 was offered, means ``"float16"``; it stays ``true`` so old batches' unit keys hold.
PRECISIONS = (False, True, "float16", "bfloat16", "auto")


def _mixed_precision(value: Any) -> bool | str:
    # One message naming the choices, and ``1`` is not ``true``.
    if isinstance(value, bool) or (isinstance(value, str) and value in PRECISIONS):
        return value
    raise ValueError(f"should be false, 'float16', 'bfloat16' or 'auto' (true means 'float16'; got {_given(value)})")


#: ``mixed_precision``: one of :data:`PRECISIONS` (:class:`TrainConfig`).
MixedPrecision = Annotated[Literal[PRECISIONS], PlainValidator(_mixed_precision)]

#: The bundled experiment files. They live inside the package so that a non-editable install
#: has them too; the repository's top-level ``experiments/`` is a link to this folder.
EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _tuple_of(item_type):
    # TOML has arrays, not tuples; accept a list and freeze it so configs stay hashable.
    return Annotated[tuple[item_type, ...], BeforeValidator(_list_to_tuple)]


Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataConfig(_Section):
    """Where the audio comes from."""

    #: ``synthetic``: the embedded generated data set; ``directory``: a folder-per-genre tree.
    source: Literal["synthetic", "directory"] = "directory"
    #: Root of the audio tree for ``source = "directory"`` (``--data-dir`` sets it).
    directory: str | None = None
    #: Audio is decoded to mono at this rate.
    sample_rate: PositiveInt = 22050
    #: Clips shorter than this many seconds are skipped by runs (and reported by ``data verify``),
    #: as truncated files are: a 30 s clip cut after its first kilobyte decodes as 0.02 s of audio.
    #: 0.5 s keeps every short clip a segment or a test could use; GTZAN's shortest is 29.9 s.
    min_seconds: Annotated[float, Field(ge=0.0)] = 0.5
    synth_clips_per_genre: PositiveInt = 100
    synth_seconds: PositiveFloat = 30.0
    synth_seed: Seed = 0


#: The musicnn settings' defaults. A setting at its default is left out of dumps (the tracked
#: config, the effective settings): models that take no embedding show nothing of musicnn.
_MUSICNN_DEFAULTS = {"musicnn_model": "MSD_musicnn", "musicnn_layers": ("mean_pool", "max_pool")}


class FeaturesConfig(_Section):
    """How a clip becomes the network's input spectrogram."""

    #: One of :data:`REPRESENTATIONS`.
    representation: Literal[REPRESENTATIONS] = "stft"
    n_fft: PositiveInt = 2048
    hop_length: PositiveInt = 512
    n_mels: PositiveInt = 128
    #: ``mfcc``: coefficients per frame (computed from ``n_mels`` mel bands).
    n_mfcc: PositiveInt = 20
    #: ``handcrafted``: add spectral contrast (7 bands) and tonnetz (6) means and variances after
    #: the public table's 57 columns; false gives exactly those 57.
    handcrafted_extras: bool = True
    #: Give the model the handcrafted vector as a second input beside this representation's
    #: frames (the ``combined`` network).
    add_handcrafted: bool = False
    #: Clips are zero-padded or trimmed to exactly this many STFT frames (study: 1320).
    frames: PositiveInt = 1320
    #: Extraction processes; 0 means one per CPU core.
    workers: NonNegativeInt = 0
    #: Cut each clip into segments of this many seconds (networks train on segments, clips are
    #: labelled by voting over theirs); unset: one input per clip, padded or trimmed to ``frames``.
    #: ``frames`` then caps the clip length that is cut.
    segment_seconds: PositiveFloat | None = None
    #: Step between segment starts (default: ``segment_seconds``, no overlap).
    segment_hop_seconds: PositiveFloat | None = None
    #: One of :data:`LAST_SEGMENT_POLICIES`. A clip shorter than one segment always gives one
    #: padded segment.
    last_segment: Literal[LAST_SEGMENT_POLICIES] = "drop"
    #: One of :data:`NORMALIZATIONS`.
    normalize: Literal[NORMALIZATIONS] = "per_clip"
    #: ``musicnn``: which pretrained network (one of :data:`MUSICNN_MODELS`) ...
    musicnn_model: Literal[MUSICNN_MODELS] = Field(
        _MUSICNN_DEFAULTS["musicnn_model"], exclude_if=lambda value: value == _MUSICNN_DEFAULTS["musicnn_model"])
    #: ... and which of its activations (:data:`MUSICNN_LAYERS`), concatenated in this order.
    musicnn_layers: _tuple_of(Literal[MUSICNN_LAYERS]) = Field(
        _MUSICNN_DEFAULTS["musicnn_layers"],
        exclude_if=lambda value: tuple(value) == _MUSICNN_DEFAULTS["musicnn_layers"])

    @model_validator(mode="after")
    def _check_segments(self):
        if self.segment_hop_seconds is not None and self.segment_seconds is None:
            raise ValueError("segment_hop_seconds needs segment_seconds")
        if not self.musicnn_layers or len(set(self.musicnn_layers)) != len(self.musicnn_layers):
            raise ValueError(f"musicnn_layers must name each layer once: {list(self.musicnn_layers)}")
        if self.representation == "musicnn-mel":
            # Segments are cut in frames of hop_length samples: the settings must be musicnn's own.
            if (self.n_fft, self.hop_length, self.n_mels) != (512, 256, 96):
                raise ValueError("representation 'musicnn-mel' is musicnn's own input: set n_fft = 512, "
                                 "hop_length = 256, n_mels = 96 (and data.sample_rate = 16000)")
            if self.normalize != "per_clip":
                raise ValueError("representation 'musicnn-mel' is never rescaled: the network's input batch "
                                 "normalisation holds its training statistics (leave normalize unset)")
        if self.add_handcrafted and self.representation not in FRAME_REPRESENTATIONS:
            raise ValueError(f"add_handcrafted needs a frame representation ({', '.join(FRAME_REPRESENTATIONS)}), "
                             f"not {self.representation!r}")
        return self

    @property
    def describe(self) -> str:
        """The representation as the report names it: ``logmel``, ``logmel+handcrafted``, ..."""
        return self.representation + ("+handcrafted" if self.add_handcrafted else "")


class SplitConfig(_Section):
    """How tracks are split into train, validation and test (see :mod:`benchmark.data.split`)."""

    #: ``paper``: the study's stratified random split; ``kfold``: stratified k-fold
    #: cross-validation; ``files``: membership lists in ``split_dir``.
    protocol: Literal["paper", "kfold", "files"] = "paper"
    #: ``paper``: the test share of all tracks.
    test_fraction: Fraction = 0.3
    #: ``paper`` and ``kfold``: the validation share of the tracks not in the test set.
    valid_fraction: Fraction = 0.2
    #: ``kfold``: the number of folds; every (model, seed, fold) is a run.
    folds: Annotated[int, Field(ge=2)] = 10
    #: ``files``: the folder of ``train.txt``, ``valid.txt`` and ``test.txt`` (``--split-dir``).
    split_dir: str | None = None
    seed: Seed = 0


class EvaluateConfig(_Section):
    """How test predictions are scored."""

    #: One of :data:`VOTES`.
    vote: Literal[VOTES] = "mean"


class EarlyStopping(_Section):
    """``[train.early_stopping]``: stop a network once ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs, and keep the weights of its best epoch.

    ``patience = 0`` (the default, and the study's protocol) trains every epoch and scores the last.
    """

    patience: NonNegativeInt = 0
    #: ``val_loss`` (minimised) or ``val_accuracy`` (maximised), both on the validation split.
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    min_delta: Annotated[float, Field(ge=0.0)] = 0.0
    #: Epochs trained before stopping is considered: networks such as the CRNN sit at chance
    #: for several epochs before they start to learn.
    start_from_epoch: NonNegativeInt = 0

    @property
    def enabled(self) -> bool:
        return self.patience > 0

    def describe(self) -> str:
        """``off``, or ``patience 5 on val_loss`` (``, min_delta 0.01``)."""
        if not self.enabled:
            return "off"
        return (f"patience {self.patience} on {self.monitor}"
                + (f" from epoch {self.start_from_epoch}" if self.start_from_epoch else "")
                + (f", min_delta {self.min_delta:g}" if self.min_delta else ""))


class TrainConfig(_Section):
    """Training settings shared by every model unless its ``[model.<name>]`` table overrides them."""

    epochs: PositiveInt = 100
    batch_size: PositiveInt = 32
    learning_rate: PositiveFloat = 1e-3
    early_stopping: EarlyStopping = EarlyStopping()
    #: Compute in a 16-bit type with float32 weights (Keras's ``mixed_float16`` or
    #: ``mixed_bfloat16`` policy; the softmax stays float32): ``"float16"`` (``true`` too) with
    #: loss scaling, for GPUs with tensor cores; ``"bfloat16"``, float32's range at half the
    #: precision, for GPUs of compute capability 8 or more and TPUs; ``"auto"``: bfloat16 where
    #: the device has it, else float32 (a CPU). Off by default; results differ from float32's.
    mixed_precision: MixedPrecision = False
    #: Compile the training step with XLA: ``auto`` is Keras's choice (on for JAX and for
    #: TensorFlow on a GPU, off for TensorFlow on a CPU). Which networks gain depends on the
    #: backend and device (``python -m benchmark profile`` measures it), so it is usually set
    #: per model: on this project's CPU, XLA halves the fully connected network's epochs under
    #: TensorFlow and doubles the convolutional ones'.
    jit_compile: JitCompile = "auto"
    #: How the inputs reach the network: ``memory`` hands Keras whole arrays (it copies each
    #: split into float32 tensors); ``stream`` feeds float32 batches read from the arrays, or
    #: memmaps, one at a time, for fit (train and validation) and predict; ``auto`` streams when
    #: the training inputs would take more than 1 GiB as float32 (the paper's STFT input), so
    #: smaller experiments keep the whole-array path and its exact results. Streaming shuffles
    #: with its own seeded order, so its results differ from the whole-array path's.
    feed: Feed = "auto"
    #: Training steps run per call into the backend (Keras's ``steps_per_execution``): fewer
    #: launches and host round trips for a small network; batch callbacks and the interrupt
    #: check then run once per call. Results are the same for any value.
    steps_per_execution: PositiveInt = 1


class RunConfig(_Section):
    """What ``run --all`` trains and with which seeds."""

    models: _tuple_of(str) = PAPER_MODELS
    #: One run per seed (and per fold under ``kfold``); figures are reported over all of them.
    seeds: _tuple_of(Seed) = (0,)
    #: The Keras backend (``tensorflow``, ``jax``, ``torch``; ``--backend`` sets it). Unset: the
    #: ``KERAS_BACKEND`` environment variable, else TensorFlow (:mod:`benchmark.backend`).
    backend: Literal[BACKENDS] | None = None

    @model_validator(mode="after")
    def _check_lists(self):
        for key in ("models", "seeds"):
            values = getattr(self, key)
            if not values:
                raise ValueError(f"run.{key} must not be empty")
            if len(set(values)) != len(values):
                raise ValueError(f"run.{key} lists a value twice: {list(values)}")
        for name in self.models:
            check_model_name(name, "run.models")
        return self


class ModelSettings(_Section):
    """One model entry's settings (``[model.<name>]``): its architecture, training overrides,
    input overrides and hyperparameters.

    The entry's name is what runs, reports and summaries call it; ``architecture`` names the
    registered model it builds (default: the entry's own name), so one architecture may appear
    twice in a batch with different inputs (``[model.crnn-mfcc] architecture = "crnn"``).
    """

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    architecture: str | None = None
    epochs: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    learning_rate: PositiveFloat | None = None
    #: ``[train]`` options for this model alone (a network's): unset, the experiment's.
    #: ``[model.<name>.early_stopping]`` keys replace those of ``[train.early_stopping]``.
    early_stopping: dict[str, Any] | None = Field(default=None, strict=False)
    mixed_precision: MixedPrecision | None = None
    jit_compile: JitCompile | None = None
    feed: Feed | None = None
    steps_per_execution: PositiveInt | None = None
    #: Any ``[features]`` key, for this model only (``[model.svm.features] representation = ...``).
    features: dict[str, Any] | None = Field(default=None, strict=False)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """Every key that is not a training setting, for the model's builder."""
        return {key: _list_to_tuple(value) for key, value in (self.model_extra or {}).items()}


class Distribution(_Section):
    """One hyperparameter's search range: ``float`` (optionally ``log``), ``int`` (``step``) or ``categorical``."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: PositiveFloat | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = Field(default=None, strict=False)

    @model_validator(mode="after")
    def _check_range(self):
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical distribution needs a non-empty 'choices' list")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a {self.type} distribution needs low < high")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError("an int distribution needs integer low and high")
        if self.log and self.low <= 0:
            raise ValueError("a log distribution needs low > 0")
        return self


class TuningConfig(_Section):
    """How ``tune`` searches; ``[tuning.<model>]`` tables replace a model's default search space."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    #: The validation metric to optimise: ``val_accuracy`` (maximised) or ``val_loss`` (minimised).
    metric: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    #: ``median`` stops trials below the median of earlier ones at the same epoch; ``threshold``
    #: stops trials whose metric falls below ``prune_below`` (above, for a loss); ``none`` never stops.
    pruner: Literal["median", "threshold", "none"] = "median"
    pruner_startup_trials: NonNegativeInt = 5
    pruner_warmup_epochs: NonNegativeInt = 2
    prune_below: float | None = None

    @property
    def spaces(self) -> dict[str, dict[str, Distribution]]:
        """The per-model search spaces given in the file, validated."""
        return {
            model: {name: Distribution.model_validate(spec) for name, spec in table.items()}
            for model, table in (self.model_extra or {}).items()
        }


def _ensemble_members(value: Any) -> str | tuple[str, ...]:
    if value == "auto":
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError(f'"auto" or a list of model names, got {value!r}')


#: How an ensemble's members are weighted (:mod:`benchmark.ensemble.select`): ``greedy``, Caruana's
#: forward selection with replacement on validation predictions; ``mean``, equal weights.
ENSEMBLE_METHODS = ("greedy", "mean")
#: The model name an ensemble's runs carry; no model entry may take it.
ENSEMBLE_MODEL = "ensemble"


class EnsembleConfig(_Section):
    """``[ensemble]``: one ensemble per (seed, split) of a batch, formed once its units finish."""

    #: ``"auto"``: every model of the batch; else a list of the batch's model names (two or more).
    members: Annotated[Any, PlainValidator(_ensemble_members)] = "auto"
    method: Literal[ENSEMBLE_METHODS] = "greedy"
    #: ``greedy``: how many picks (with replacement) make the ensemble; a member's weight is its
    #: share of the picks.
    size: Annotated[int, Field(ge=2)] = 5

    @model_validator(mode="after")
    def _check_members(self):
        if self.members != "auto":
            if len(self.members) < 2:
                raise ValueError(f"members: an ensemble needs two models or more, got {list(self.members)}")
            if len(set(self.members)) != len(self.members):
                raise ValueError(f"members lists a model twice: {list(self.members)}")
        return self

    def members_of(self, models) -> list[str]:
        """The member names in a batch of ``models``: a user error where one is not in it."""
        if self.members == "auto":
            return list(models)
        missing = [name for name in self.members if name not in models]
        if missing:
            raise BenchmarkError(f"ensemble.members: {', '.join(missing)} not in this run's models "
                                 f"({', '.join(models)})")
        return list(self.members)


class ExperimentConfig(_Section):
    """A whole experiment, as loaded from one TOML file plus overrides."""

    name: str
    description: str = ""
    run: RunConfig = RunConfig()
    data: DataConfig = DataConfig()
    features: FeaturesConfig = FeaturesConfig()
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    model: dict[str, ModelSettings] = {}
    tuning: TuningConfig = TuningConfig()
    #: Unset: no ensemble.
    ensemble: EnsembleConfig | None = None

    @model_serializer(mode="wrap")
    def _without_unset_ensemble(self, handler):
        # No ``ensemble`` key without one: the config, params and unit records of experiments
        # without an ensemble stay what they were before ensembles existed.
        values = handler(self)
        if self.ensemble is None:
            values.pop("ensemble", None)
        return values

    @model_validator(mode="after")
    def _check_model_entries(self):
        for name in self.model:
            check_model_name(name, f"model.{name}")
            self.features_for(name)  # an unknown or invalid key fails here, named
            self.training_for(name)
        return self

    def model_settings(self, name: str) -> ModelSettings:
        """The ``[model.<name>]`` table, or an empty one."""
        return self.model.get(name, ModelSettings())

    def architecture_of(self, name: str) -> str:
        """The registered model a model entry builds: its ``architecture``, else its own name."""
        return self.model_settings(name).architecture or name

    def features_for(self, name: str) -> FeaturesConfig:
        """The input settings of one model entry: ``[features]``, then what its model needs for
        its inputs (:func:`benchmark.models.required_features`: the combined network's handcrafted
        vector), then its own ``[model.<name>.features]``, which wins: a user may force a value."""
        from benchmark.models import required_features  # the registry, without Keras

        own = self.model_settings(name).features or {}
        needed = {key: value for key, value in required_features(self.architecture_of(name)).items()
                  if key not in own and getattr(self.features, key) != value}
        if not own and not needed:
            return self.features
        try:
            return FeaturesConfig.model_validate({**self.features.model_dump(), **needed, **own})
        except ValidationError as error:
            supplied = ", ".join(f"{key} = {_shown(value)}" for key, value in needed.items())
            why = (f" (the {self.architecture_of(name)} model needs {supplied}: choose [model.{name}.features] "
                   "settings that allow it)") if needed else ""
            raise ValueError(f"model.{name}.features: {_describe(error)}{why}") from None

    def training_for(self, name: str) -> TrainConfig:
        """Training settings for one model: the shared ones with its own overrides applied."""
        settings = self.model_settings(name)
        own = {key: getattr(settings, key) for key in (*TRAINING_KEYS, *EPOCH_TRAINING_OPTIONS)
               if getattr(settings, key) is not None}
        if settings.early_stopping is not None:
            try:
                own["early_stopping"] = EarlyStopping.model_validate(
                    {**self.train.early_stopping.model_dump(), **settings.early_stopping})
            except ValidationError as error:
                raise ValueError(f"model.{name}.early_stopping: {_describe(error)}") from None
        return self.train.model_copy(update=own)

    def flat(self) -> dict[str, Any]:
        """The whole configuration as ``{"section.key": value}``, for tracking."""
        return dict(flatten(self.model_dump(mode="json")))


def load_experiment(
    path: str | Path,
    overrides: Iterable[str] = (),
    *,
    data_dir: str | Path | None = None,
    split_dir: str | Path | None = None,
    seeds: Iterable[int] | None = None,
    check_models: bool = True,
) -> ExperimentConfig:
    """Load and validate an experiment file, applying ``--set`` overrides and CLI flags.

    ``path`` may also be the bare name of a file in ``experiments/`` (``smoke``). Every user
    mistake is a :class:`BenchmarkError` naming the file and the dotted key (``--set`` mistakes
    name ``--set``). ``split_dir``
    chooses the ``files`` protocol with that folder's lists. ``check_models=False`` skips
    checking model names and hyperparameters, which imports Keras: for verbs that never train.
    """
    path = resolve_experiment_path(path)
    return adjust_experiment(read_experiment(path), overrides, origin=str(path), data_dir=data_dir,
                             split_dir=split_dir, seeds=seeds, check_models=check_models)


def adjust_experiment(
    raw: Mapping[str, Any],
    overrides: Iterable[str] = (),
    *,
    origin: str,
    data_dir: str | Path | None = None,
    split_dir: str | Path | None = None,
    seeds: Iterable[int] | None = None,
    check_models: bool = True,
) -> ExperimentConfig:
    """An experiment's raw values (a file's, or a stored batch's) with ``--set`` overrides and CLI
    flags applied, as :func:`load_experiment` says; ``origin`` names where the values came from."""
    merged = copy.deepcopy(dict(raw))
    overrides = list(overrides)
    if overrides:
        # Validated once with the original values, so a mistake there still names its origin.
        validate_experiment(merged, origin=origin, check_models=False)
        for override in overrides:
            _apply_override(merged, override)
        origin = f"{origin} with --set {' --set '.join(overrides)}"
    if data_dir is not None:
        merged.setdefault("data", {}).update(source="directory", directory=str(data_dir))
    if split_dir is not None:
        merged.setdefault("split", {}).update(protocol="files", split_dir=str(split_dir))
    if seeds is not None:
        merged.setdefault("run", {})["seeds"] = list(seeds)
        origin = f"{origin} with --seeds {' '.join(map(str, seeds))}"
    return validate_experiment(merged, origin=origin, check_models=check_models)


def read_experiment(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """An experiment file's raw values merged key by key over those of the file it ``extends``.

    ``name`` defaults to the file's stem and ``description`` to empty: neither is inherited.
    """
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise BenchmarkError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise BenchmarkError(f"cannot read experiment file {path}: {error.strerror}") from None
    parent = raw.pop(EXTENDS_KEY, None)
    merged: dict[str, Any] = {}
    if parent is not None:
        if not isinstance(parent, str):
            raise BenchmarkError(f"{path}: {EXTENDS_KEY} must be an experiment name or path, got {parent!r}")
        # A relative path is relative to the file that names it; a bare name may be bundled.
        nearby = path.parent / parent
        parent_path = resolve_experiment_path(nearby if nearby.is_file() else parent)
        if parent_path.resolve() in (*_seen, path.resolve()):
            raise BenchmarkError(f"{path}: {EXTENDS_KEY} = {parent!r} makes a cycle")
        merged = read_experiment(parent_path, (*_seen, path.resolve()))
        merged.pop("name", None)
        merged.pop("description", None)
    _deep_merge(merged, raw)
    merged.setdefault("name", path.stem)
    return merged


def validate_experiment(
    raw: Mapping[str, Any], origin: str = "config", *, check_models: bool = True
) -> ExperimentConfig:
    """Validate a raw dictionary into an :class:`ExperimentConfig`, or raise one clear error."""
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise BenchmarkError(f"{origin}: {_describe(error)}") from None
    if check_models:
        _check_models(config, origin)
    return config


def resolve_experiment_path(path: str | Path) -> Path:
    """A path as given, or the file of that name in the project's ``experiments/`` folder."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    named = EXPERIMENTS_DIR / f"{candidate.stem}.toml"
    if candidate.parent == Path(".") and named.is_file():
        return named
    known = ", ".join(sorted(list_experiments()))
    raise BenchmarkError(f"experiment file not found: {path} (bundled experiments: {known})")


def list_experiments() -> dict[str, str]:
    """Bundled experiment names mapped to their descriptions."""
    found = {}
    for path in sorted(EXPERIMENTS_DIR.glob("*.toml")):
        with path.open("rb") as handle:
            found[path.stem] = tomllib.load(handle).get("description", "")
    return found


def _check_models(config: ExperimentConfig, origin: str) -> None:
    # Imported here: the registry pulls in Keras, which only commands that train need.
    from benchmark.models import get_model_spec, resolve_hyperparameters

    for name in config.run.models:
        try:
            get_model_spec(config.architecture_of(name))
        except BenchmarkError as error:
            raise BenchmarkError(f"{origin}: run.models: {error}") from None
    if config.ensemble is not None and (ENSEMBLE_MODEL in config.run.models or ENSEMBLE_MODEL in config.model):
        # (Its members are checked when a batch starts: --model may run other models than run.models.)
        raise BenchmarkError(f"{origin}: {ENSEMBLE_MODEL!r} names the ensemble's runs: call the model otherwise")
    for name in dict.fromkeys([*config.run.models, *config.model]):
        settings = config.model_settings(name)
        architecture = config.architecture_of(name)
        try:
            spec = get_model_spec(architecture)
            resolve_hyperparameters(architecture, settings.hyperparameters)
        except BenchmarkError as error:
            raise BenchmarkError(f"{origin}: model.{name}: {error}") from None
        given = [key for key in TRAINING_KEYS if getattr(settings, key) is not None]
        if "epochs" not in spec.adapter.training_keys:
            given += [key for key in EPOCH_TRAINING_OPTIONS if getattr(settings, key) is not None]
        unused = sorted(set(given) - set(spec.adapter.training_keys))
        if unused:
            raise BenchmarkError(
                f"{origin}: model.{name}: a {spec.kind} model has no {', '.join(unused)} "
                f"(it trains without epochs or batches)"
            )
    check_model_inputs(config, dict.fromkeys([*config.run.models, *config.model]), origin)
    for name, table in (config.tuning.model_extra or {}).items():
        if not isinstance(table, Mapping):
            raise BenchmarkError(f"{origin}: unknown key 'tuning.{name}'")
        try:
            spec = get_model_spec(config.architecture_of(name))
            tunable = set(spec.defaults) | set(spec.adapter.training_keys)
            for key, distribution in table.items():
                if key not in tunable:
                    raise BenchmarkError(
                        f"unknown hyperparameter {key!r} for model {name!r}; "
                        f"tunable: {', '.join(sorted(tunable))}"
                    )
                Distribution.model_validate(distribution)
        except ValidationError as error:
            raise BenchmarkError(f"{origin}: tuning.{name}.{key}: {_describe(error)}") from None
        except BenchmarkError as error:
            raise BenchmarkError(f"{origin}: tuning.{name}: {error}") from None


def check_model_inputs(config: ExperimentConfig, names: Iterable[str], origin: str = "config") -> None:
    """Each named model entry gets the inputs its model needs, or one :class:`BenchmarkError`
    naming the missing input and the key to set: a setting the user forced (``[model.<name>.features]``)
    can make them impossible. Called before any unit trains, for models named on the command line too."""
    from benchmark.models import get_model_spec

    for name in names:
        spec = get_model_spec(config.architecture_of(name))
        try:
            features = config.features_for(name)
        except ValueError as error:
            raise BenchmarkError(f"{origin}: {error}") from None
        if missing := spec.adapter.missing_inputs(features):
            raise BenchmarkError(f"{origin}: model.{name}: {missing.replace('<name>', name)}")


def check_ensemble_models(config: ExperimentConfig, models, origin: str | None = None) -> None:
    """The ensemble's members are among ``models`` (the batch's), and no model takes its name."""
    prefix = f"{origin}: " if origin else ""
    if ENSEMBLE_MODEL in models or ENSEMBLE_MODEL in config.model:
        raise BenchmarkError(f"{prefix}{ENSEMBLE_MODEL!r} names the ensemble's runs: call the model otherwise")
    try:
        config.ensemble.members_of(list(models))
    except BenchmarkError as error:
        raise BenchmarkError(f"{prefix}{error}") from None


def _apply_override(merged: dict[str, Any], override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise BenchmarkError(f"--set expects section.key=value, got {override!r}")
    if key.strip() == EXTENDS_KEY:
        raise BenchmarkError(f"--set cannot change {EXTENDS_KEY}: pass another --experiment")
    value = _parse_value(text.strip())
    *parents, leaf = key.strip().split(".")
    node = merged
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise BenchmarkError(f"--set {key}: {part!r} is a value, not a section")
        node = child
    node[leaf] = value


def _parse_value(text: str) -> Any:
    """A TOML value (``3``, ``1e-4``, ``true``, ``[8, 16]``, ``"x"``); bare words stay strings."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def flatten(node: Mapping[str, Any], prefix: str = ""):
    """``(dotted key, value)`` for every leaf of nested mappings: ``{"a": {"b": 1}}`` gives ``("a.b", 1)``."""
    for key, value in node.items():
        if isinstance(value, Mapping):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _given(value: Any) -> str:
    """A value a validator refuses, as the user wrote it: TOML's ``true``/``false``, else its repr."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _shown(value: Any) -> str:
    """A value as TOML writes it (``true``, ``"logmel"``), for messages that say what to set."""
    return json.dumps(value)


def _describe(error: ValidationError) -> str:
    """The first validation problem as one line: the dotted key and what is wrong with it."""
    problem = error.errors()[0]
    key = ".".join(str(part) for part in problem["loc"])
    if problem["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    if problem["type"] == "missing":
        return f"missing key {key!r}"
    if problem["type"] == "value_error":  # our own validators: the message says it all, names as given
        message = problem["msg"].removeprefix("Value error, ")
        return f"{key}: {message}" if key and not message.startswith(f"{key}.") else message
    return f"{key}: {problem['msg'].lower()} (got {problem.get('input')!r})"
