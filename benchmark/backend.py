"""Which Keras backend trains: chosen per command, before Keras is imported.

Keras reads ``KERAS_BACKEND`` once, at import, and cannot switch afterwards. So a command picks
the backend (``--backend``, else ``run.backend`` of the experiment, else ``KERAS_BACKEND``,
else TensorFlow) before anything imports Keras, and the choice is set in the environment,
where unit processes and Ray workers inherit it, with the backend's GPU memory policy
(:func:`memory_policy`). Runs record it as the ``keras_backend`` tag,
and it is part of each unit's settings (:func:`benchmark.batch.unit_settings`), since results
differ between backends.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from benchmark.errors import BenchmarkError

#: The Keras 3 backends a run may train on (``run.backend``), each the name of its package.
BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"


def current_backend() -> str:
    """The backend this process trains on (or will, once Keras is imported)."""
    return os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND


def select_backend(name: str | None) -> str:
    """Make ``name`` this process's Keras backend (None: keep :func:`current_backend`); returns it.

    Also sets the backend's GPU memory policy (:data:`MEMORY_POLICY`) where the user set none,
    and quiets its start-up logs (:func:`quiet_backend_logs`).

    A backend whose package is not installed, or another backend than the one Keras was already
    imported with, is a :class:`BenchmarkError`: failing here costs a second, not a batch.
    """
    name = name or current_backend()
    if name not in BACKENDS:
        raise BenchmarkError(f"unknown Keras backend {name!r} ({', '.join(BACKENDS)})")
    if importlib.util.find_spec(name) is None:
        extra = "" if name == DEFAULT_BACKEND else f" (pip install 'genre-benchmark[{name}]')"
        raise BenchmarkError(f"the Keras backend {name!r} is not installed{extra}")
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != name:
            raise BenchmarkError(f"Keras already runs on {running!r} in this process; cannot switch to {name!r} "
                                 f"(set KERAS_BACKEND={name} before starting)")
    os.environ["KERAS_BACKEND"] = name
    # Here once, for this process and every process it starts (units, tuning workers, Ray tasks).
    os.environ.update(memory_policy(dict(os.environ), name))
    quiet_backend_logs()
    return name


# --- what a backend's process needs on a GPU -------------------------------------------------------

#: Each backend's GPU memory policy, set in every unit's process (and Ray task) unless the user
#: set its variables. Two units' processes overlap (one logs while the next trains), and a tuning
#: study trains several at once: by default JAX preallocates 75% of the device per process and
#: TensorFlow all of it, so the second process fails to allocate. Preallocation off (JAX) and
#: memory growth (TensorFlow) let each take what it uses. PyTorch's caching allocator is lazy
#: already; ``PYTORCH_CUDA_ALLOC_CONF`` stays the user's.
MEMORY_POLICY = {
    "jax": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
    "tensorflow": {"TF_FORCE_GPU_ALLOW_GROWTH": "true"},
    "torch": {},
}
#: Setting any of these is choosing JAX's memory policy oneself (a fraction with preallocation,
#: another allocator): then none of the policy's defaults is added.
JAX_MEMORY_VARIABLES = ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                        "XLA_PYTHON_CLIENT_ALLOCATOR")


def memory_policy(environment: dict[str, str], backend: str | None = None) -> dict[str, str]:
    """The variables of ``backend``'s memory policy that ``environment`` lacks (the user's values win).

    ``backend`` defaults to the environment's ``KERAS_BACKEND`` (else TensorFlow).
    """
    backend = backend or environment.get("KERAS_BACKEND") or DEFAULT_BACKEND
    policy = MEMORY_POLICY.get(backend, {})
    if backend == "jax" and any(name in environment for name in JAX_MEMORY_VARIABLES):
        return {}
    return {name: value for name, value in policy.items() if name not in environment}


def with_memory_policy(environment: dict[str, str], backend: str | None = None) -> dict[str, str]:
    """``environment`` with its backend's memory policy added where the user set none."""
    return {**memory_policy(environment, backend), **environment}


#: JAX's probes of backends it was not built for ("Unable to initialize backend 'tpu'", the IFRT
#: proxy) are INFO lines of this logger: a line per unit's process under the harness's INFO
#: logging. Its warnings (a GPU that failed to initialise, a fallback to the CPU) stay.
JAX_LOGGER = "jax"
#: JAX's warning when int64 labels become int32 (x64 is off by design: labels are < 2**31).
INT64_TRUNCATION = r"Explicitly requested dtype int64 .*truncated to dtype int32"


def quiet_backend_logs() -> None:
    """Keep the backends' start-up chatter out of the harness's log, in this process.

    TensorFlow's retracing advice and JAX's backend probes are noise (each network is traced
    afresh by design; a CPU machine has no TPU); their warnings and errors still show.
    """
    import logging
    import warnings

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger(JAX_LOGGER).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=INT64_TRUNCATION, category=UserWarning)


def device_in_use(backend: str | None = None) -> str:
    """The device ``backend`` trains on, as one phrase: ``cuda:0 NVIDIA H100 80GB HBM3``, or ``cpu``.

    Initialises the backend in this process (a unit's, never the batch's: the batch's process
    stays free of the frameworks). Any other accelerators are counted after the first.
    """
    backend = backend or current_backend()
    if backend == "jax":
        import jax

        devices = [device for device in jax.devices() if device.platform != "cpu"]
        names = [f"{'cuda' if d.platform == 'gpu' else d.platform}:{d.id} {d.device_kind}" for d in devices]
    elif backend == "torch":
        import torch

        names = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    else:
        import tensorflow as tf

        names = [f"cuda:{i} {tf.config.experimental.get_device_details(gpu).get('device_name', gpu.name)}"
                 for i, gpu in enumerate(tf.config.list_physical_devices("GPU"))]
    if not names:
        return "cpu"
    return names[0] + (f" (+{len(names) - 1} more)" if len(names) > 1 else "")
