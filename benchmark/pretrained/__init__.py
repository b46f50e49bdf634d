"""Pretrained networks: musicnn's audio taggers ported to Keras 3, their weights fetched on first use.

- :mod:`.weights`: the musicnn 0.1.0 wheel from the package index (``pip download``), checked
  against its pinned sha256; its TF1 checkpoints extracted into the cache and converted once to
  NumPy ``.npz`` files, so any Keras backend loads them. Nothing is fetched at import time.
- :mod:`.musicnn`: the architecture in backend-agnostic Keras 3 layers, and the loading of a
  checkpoint's weights into it by variable name.
- :mod:`.embed`: musicnn's input (16 kHz, 96-band log-mel) and clip embeddings averaged over
  3 s windows, computed in batches.
"""
