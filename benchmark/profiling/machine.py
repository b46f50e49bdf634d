"""What a profile was measured on: CPUs, load, Python, Keras and its backend, accelerators, commit."""

from __future__ import annotations

import os
import platform
from typing import Any


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the system has none): a shared, busy
    machine makes every number of a profile slower."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_info() -> dict[str, Any]:
    """CPU count (and those this process may use), load average now, versions, accelerators, the
    device in use, git commit.

    Imports Keras (its backend is part of the answer); the backend is what ``KERAS_BACKEND``
    chose before Keras was first imported.
    """
    import keras
    import numpy

    from benchmark.provenance import git_commit

    backend = keras.backend.backend()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": _backend_version(backend),
        "accelerators": _accelerators(backend),
        "device": _device(backend),
        "git_commit": git_commit(),
    }


def _backend_version(backend: str) -> str | None:
    import importlib.metadata

    package = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    try:
        return importlib.metadata.version(package) if package else None
    except importlib.metadata.PackageNotFoundError:
        return None


def _device(backend: str) -> str | None:
    """The device the backend trains on (``cuda:0 NVIDIA H100 80GB HBM3``, ``cpu``), as ``run`` logs it."""
    from benchmark.backend import device_in_use

    try:
        return device_in_use(backend)
    except Exception:  # noqa: BLE001  a backend's device query failing must not fail the profile
        return None


def _accelerators(backend: str) -> list[str]:
    """The GPUs (or TPUs) the backend sees, by name; empty on a CPU-only machine."""
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [device.name for device in tf.config.list_physical_devices() if device.device_type != "CPU"]
        if backend == "jax":
            import jax

            return [str(device) for device in jax.devices() if device.platform != "cpu"]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001  a backend's device query failing must not fail the profile
        return []
    return []
