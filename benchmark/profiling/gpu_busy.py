"""How busy the GPU was during a fit: NVML's utilisation, sampled on a thread.

NVML's ``utilization.gpu`` is the share of its last sample period (1/6 s to 1 s, by device)
in which a kernel ran on the GPU: the device's busy fraction, as ``nvidia-smi`` shows it.
:class:`BusySampler` reads it every :data:`INTERVAL_SECONDS` while a profile runs, each sample
stamped on the :func:`time.perf_counter` clock, so the busy fraction of any window (a fit, its
steady epochs) is the mean of the samples inside it.

``nvidia-ml-py`` (``pip install -e ".[gpu]"``; the module is ``pynvml``) is optional and
imported only here: without it, or without an NVIDIA GPU, :func:`nvml_sampler` returns None and
the profile says "no NVIDIA GPU".
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

#: Seconds between samples: several per NVML sample period, few enough to cost nothing.
INTERVAL_SECONDS = 0.1
#: What a profile says where it could not sample.
NO_GPU = "no NVIDIA GPU"


class BusySampler:
    """Samples ``read()`` (a busy fraction in [0, 1]) every ``interval`` seconds on a daemon thread."""

    def __init__(self, read: Callable[[], float], *, device: str, interval: float = INTERVAL_SECONDS):
        self._read, self.device, self._interval = read, device, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="gpu busy sampler", daemon=True)

    def __enter__(self) -> BusySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.perf_counter(), self._read()))
            except Exception:  # noqa: BLE001  a sample missed (the driver busy resetting) is only missed
                pass
            self._stop.wait(self._interval)

    def fraction(self, window: tuple[float, float] | None) -> float | None:
        """The mean busy fraction of the samples taken in ``window`` (start, end); None where none were."""
        if window is None:
            return None
        inside = [busy for when, busy in self.samples if window[0] <= when <= window[1]]
        return sum(inside) / len(inside) if inside else None


def nvml_sampler() -> BusySampler | None:
    """A sampler of the GPU this process trains on (NVML), or None: no ``pynvml``, no NVIDIA GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = _visible_device(pynvml)
        name = pynvml.nvmlDeviceGetName(handle)
    except Exception:  # noqa: BLE001  not installed, no driver, no device: all mean "no NVIDIA GPU"
        return None
    name = name.decode() if isinstance(name, bytes) else name
    return BusySampler(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0, device=name)


def _visible_device(pynvml) -> Any:
    """The first device ``CUDA_VISIBLE_DEVICES`` shows (an index or a UUID), else device 0.

    NVML counts every device, whatever CUDA_VISIBLE_DEVICES hides from the frameworks.
    """
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if first.startswith("GPU-"):
        return pynvml.nvmlDeviceGetHandleByUUID(first)
    return pynvml.nvmlDeviceGetHandleByIndex(int(first) if first.isdigit() else 0)
