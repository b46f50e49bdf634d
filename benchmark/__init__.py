"""Music genre recognition benchmark: the Mhatre study's four networks, tracked in MLflow."""

import glob
import os

# TensorFlow's C++ start-up chatter (CUDA probes, oneDNN notes) buries the harness's own
# progress lines; keep warnings and errors. Without an NVIDIA device, TensorFlow's CUDA build
# logs its failed cuInit as an error in every process that trains (every unit of a batch):
# there, keep fatal messages only (a real failure still raises, with its message). Set before
# any backend import; users may override.
#: The user's own TF_CPP_MIN_LOG_LEVEL, if any: what Ray forwards to nodes that may have a GPU.
USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if glob.glob("/dev/nvidia[0-9]*") else "3")

__version__ = "0.1.0"
