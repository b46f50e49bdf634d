"""``[train] mixed_precision`` as a Keras dtype policy, and what ``auto`` finds on the device.

A module of its own (the leading ``_`` keeps the package's discovery from importing it): asking
the backend about its devices imports it, which the registry must not do.
"""

from __future__ import annotations

import logging

log = logging.getLogger("benchmark.models.network")

#: ``[train] mixed_precision`` -> Keras's global dtype policy.
POLICIES = {False: "float32", True: "mixed_float16", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
#: The first NVIDIA compute capability with bfloat16 tensor cores (Ampere).
BFLOAT16_CAPABILITY = (8, 0)


def precision_policy(setting: bool | str) -> str:
    """The Keras dtype policy for ``setting``; ``auto`` is bfloat16 on a TPU or an NVIDIA GPU of
    compute capability 8 or more, and float32 elsewhere (a CPU: 16-bit types only slow it)."""
    if setting != "auto":
        return POLICIES[setting]
    device = accelerator()
    policy = "mixed_bfloat16" if device is not None and device[1] else "float32"
    log.info("mixed_precision auto: %s on %s", policy, device[0] if device else "cpu")
    return policy


def accelerator() -> tuple[str, bool] | None:
    """The backend's first accelerator, as (its name, whether it computes in bfloat16 at speed),
    or None on a CPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_accelerator()
    if backend == "tensorflow":
        return _tensorflow_accelerator()
    if backend == "torch":
        return _torch_accelerator()
    return None


def _capable(capability) -> bool:
    """Whether an NVIDIA compute capability, ``(major, minor)`` or ``"major.minor"``, has bfloat16."""
    if isinstance(capability, str):
        capability = tuple(int(part) for part in capability.split(".")[:2])
    return tuple(capability) >= BFLOAT16_CAPABILITY


def _jax_accelerator():
    import jax

    device = jax.devices()[0]
    if device.platform == "tpu":
        return device.device_kind, True
    if device.platform == "gpu":
        capability = getattr(device, "compute_capability", None)
        return device.device_kind, capability is not None and _capable(capability)
    return None


def _tensorflow_accelerator():
    import tensorflow as tf

    if tf.config.list_physical_devices("TPU"):
        return "TPU", True
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    capability = details.get("compute_capability")
    return details.get("device_name", gpus[0].name), capability is not None and _capable(capability)


def _torch_accelerator():
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0), _capable(torch.cuda.get_device_capability(0))
