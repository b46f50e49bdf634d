"""Applying a trained network to new audio: the audio-in MLflow model, the registry, `predict`.

- :mod:`benchmark.serving.audio_model`: the pyfunc model every training run logs next to its
  Keras network; it takes audio (paths or base64 bytes) and returns genres.
- :mod:`benchmark.serving.registry`: `promote`, the best run of a batch to the Model Registry.
- :mod:`benchmark.serving.predict`: `predict`, files and folders through a registered model.
- :mod:`benchmark.serving.latency`: `latency`, per-clip and batch inference speed per network.

Nothing is imported here: each command imports the module it needs (MLflow and Keras are slow
to import).
"""
