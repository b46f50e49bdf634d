"""The file MLflow runs to build an ensemble's audio model when it loads one ("models from code").

See :mod:`benchmark.audio_model_code`; not meant to be imported otherwise.
"""

from mlflow.models import set_model

from benchmark.ensemble.audio_model import EnsembleAudioModel

set_model(EnsembleAudioModel())
