"""The file MLflow runs to build the audio model when it loads one ("models from code").

Logged as the model's code instead of a pickled object: loading runs this with the model's own
copy of the ``benchmark`` package first on ``sys.path``. Not meant to be imported otherwise.
"""

from mlflow.models import set_model

from benchmark.audio_model import AudioGenreModel

set_model(AudioGenreModel())
