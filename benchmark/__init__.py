"""Music genre recognition benchmark: the Mhatre study's four networks, tracked in MLflow."""

import os

# TensorFlow's C++ start-up chatter (CUDA probes, oneDNN notes) buries the harness's own
# progress lines; keep warnings and errors. Set before any backend import; users may override.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
