"""Which Keras backend a training run uses: the choices, their checks and their environment.

Keras 3 picks its backend (TensorFlow, JAX or PyTorch) once, when it is first
imported, from ``KERAS_BACKEND``. The GUI process keeps TensorFlow for its shapes;
a training child is a fresh process, so each run may choose. Everything here
answers without importing any backend (``importlib.util.find_spec`` only), so the
command line refuses a bad ``--backend`` in one line before anything starts, and
the training window lists the backends without loading them.

What a backend lacks is refused before the run (:func:`refusal`), never halfway
through it: TensorBoard's profiler exists on TensorFlow only here, and several
devices train through ``tf.distribute.MirroredStrategy`` on TensorFlow and
``keras.distribution.DataParallel`` on JAX, not at all on PyTorch.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

#: The backends Keras 3 offers, in the order the picker lists them.
BACKENDS = ("tensorflow", "jax", "torch")
#: The backend a run uses when none is chosen: the one this process's Keras would pick.
DEFAULT_BACKEND = "tensorflow"
#: What installs each backend (the app's own extras where it has one).
INSTALL = {
    "tensorflow": "pip install tensorflow",
    "jax": 'pip install "jax[cpu]" (or jax[cuda12] for NVIDIA GPUs)',
    "torch": 'pip install "builder-app[torch]"',
}
#: How the picker and the messages name them.
LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


class BackendError(ValueError):
    """A backend that does not exist, is not installed, or cannot run the chosen settings (one line)."""


def is_installed(name: str) -> bool:
    """Whether the backend's package can be imported here (found, not imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def installed_backends() -> list[str]:
    """The backends a run can use here, in :data:`BACKENDS` order."""
    return [name for name in BACKENDS if is_installed(name)]


def default_backend() -> str:
    """``KERAS_BACKEND`` when it names a backend, else TensorFlow (the GUI's own)."""
    chosen = os.environ.get("KERAS_BACKEND", "").strip().lower()
    return chosen if chosen in BACKENDS else DEFAULT_BACKEND


def check_backend(name: str | None) -> str:
    """The backend ``name`` means (None: the default), refused in one line when it cannot run here.

    Raises:
        BackendError: Not a Keras backend, or not installed.
    """
    if name is None:
        return default_backend()
    key = str(name).strip().lower()
    if key in ("tf", "tensorflow"):
        key = "tensorflow"
    elif key in ("pytorch", "torch"):
        key = "torch"
    if key not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}: one of {', '.join(BACKENDS)}")
    if not is_installed(key):
        there = installed_backends()
        have = f" (installed: {', '.join(there)})" if there else ""
        raise BackendError(f"the {key} backend is not installed here{have}: {INSTALL[key]}")
    return key


def refusal(backend: str, settings: Mapping[str, Any], *, replicas: int = 0) -> str | None:
    """Why ``settings`` cannot train on ``backend`` (one line), or None when they can.

    Args:
        backend: A checked backend name (:func:`check_backend`).
        settings: The run's resolved training settings
            (:func:`~builder_app.core.training_settings.resolve`).
        replicas: Logical CPU devices to train on (``Overrides.cpu_replicas``); 0 or 1: one.
    """
    label = LABELS[backend]
    tensorboard = (settings.get("callbacks") or {}).get("tensorboard")
    if backend != "tensorflow" and tensorboard and _profiles(tensorboard.get("profile_batch", 0)):
        return (
            f"TensorBoard's profiler (callbacks.tensorboard.profile_batch) runs on the TensorFlow backend only,"
            f" not on {label}: set profile_batch to 0 or train on TensorFlow"
        )
    if backend == "torch" and replicas > 1:
        return (
            f"training on {replicas} devices needs MirroredStrategy (TensorFlow) or DataParallel (JAX);"
            f" Keras has neither on {label}"
        )
    return None


def _profiles(value: Any) -> bool:
    """Whether a ``profile_batch`` value asks for profiling (0, "0", "0,0" and empty do not)."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        return any(p != "0" for p in parts)
    if isinstance(value, (list, tuple)):
        return any(_profiles(v) for v in value)
    return bool(value)


def child_environment(backend: str, *, replicas: int = 0) -> dict[str, str]:
    """The environment variables a training child on ``backend`` starts with.

    ``KERAS_BACKEND`` chooses the backend. JAX takes 75% of a GPU's memory when it
    starts unless told not to (``XLA_PYTHON_CLIENT_PREALLOCATE=false``: it takes
    what it uses, as TensorFlow's memory growth does); several logical CPU devices
    on JAX come from XLA's flag, read when JAX starts. PyTorch needs nothing.
    """
    env = {"KERAS_BACKEND": backend}
    if backend == "jax":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        if replicas > 1:
            flags = os.environ.get("XLA_FLAGS", "")
            flags = " ".join(f for f in flags.split() if not f.startswith("--xla_force_host_platform_device_count"))
            env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={replicas}".strip()
            env["JAX_PLATFORMS"] = "cpu"
    return env


def describe(backend: str, devices: str) -> str:
    """What trains, as the run's started event and history say it: ``CPU``, ``CPU (jax)``, ``GPU: … (torch)``.

    TensorFlow, the default, is not named (the history of earlier runs reads as before).
    """
    return devices if backend == DEFAULT_BACKEND else f"{devices} ({backend})"
