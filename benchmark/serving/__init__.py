"""Applying a trained model to new audio: promotion, `predict`, inference speed.

Each consumes the audio-in MLflow model (:mod:`benchmark.audio_model`) that every training run
logs next to its fitted estimator; it takes audio (paths or base64 bytes) and returns genres.

- :mod:`benchmark.serving.promote`: `promote`, the best run of a batch to the Model Registry.
- :mod:`benchmark.serving.predict`: `predict`, files and folders through a registered model.
- :mod:`benchmark.serving.latency`: `latency`, per-clip and batch inference speed per network.

Nothing is imported here: each command imports the module it needs (MLflow and Keras are slow
to import).
"""
