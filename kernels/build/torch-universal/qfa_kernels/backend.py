"""Which backend runs a call: Triton on CUDA, torch everywhere else, overridable and queryable.

The choice is automatic but never hidden: :func:`selected_backend` answers the same question
:func:`qfa_kernels.wna16_linear` asks, and ``QFA_KERNEL_BACKEND=auto|triton|torch`` (or the
``backend=`` argument, which wins) forces either side. Forcing ``triton`` on CPU works when
``TRITON_INTERPRET=1`` was set before triton was first imported (the interpreter is slow and is
meant for tests).

Triton is imported here only to read its version, and only when a call could use it, so the
package imports and the torch path works on machines without triton or without a GPU.
"""

from __future__ import annotations

import functools
import os
import warnings

import torch

from .layout import TRITON_GROUP_MULTIPLE

BACKEND_ENV = "QFA_KERNEL_BACKEND"
"""Environment variable that forces a backend for every call without an explicit ``backend=``."""

BACKENDS: tuple[str, ...] = ("auto", "triton", "torch")

MIN_TRITON_VERSION: tuple[int, int] = (3, 0)
"""Oldest triton the kernels are written for (``tl.dot(input_precision=...)`` appeared in 3.0)."""

_TRUTHY = ("1", "true", "yes", "on", "y")


@functools.cache
def triton_version() -> tuple[int, int] | None:
    """``(major, minor)`` of the importable triton, or ``None`` when there is none."""
    try:
        import triton
    except ImportError:
        return None
    major, minor = (
        int("".join(ch for ch in part if ch.isdigit()) or 0) for part in triton.__version__.split(".")[:2]
    )
    return major, minor


def is_triton_available() -> bool:
    """Whether a triton new enough for these kernels can be imported."""
    version = triton_version()
    return version is not None and version >= MIN_TRITON_VERSION


def interpreter_requested() -> bool:
    """Whether ``TRITON_INTERPRET`` asks triton to run kernels on CPU through its interpreter."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in _TRUTHY


def requested_backend(backend: str | None = None) -> str:
    """The backend asked for: ``backend`` if given, else ``$QFA_KERNEL_BACKEND``, else ``"auto"``."""
    source = "`backend`" if backend is not None else f"the environment variable {BACKEND_ENV}"
    value = backend if backend is not None else os.environ.get(BACKEND_ENV, "auto")
    if not isinstance(value, str) or value.strip().lower() not in BACKENDS:
        raise ValueError(f"{source}={value!r} is not a qfa_kernels backend; choose one of {BACKENDS}.")
    return value.strip().lower()


def triton_unsupported_reason(device: torch.device, group_size: int | None = None) -> str | None:
    """Why the Triton kernels cannot run this call, or ``None`` when they can."""
    if not is_triton_available():
        found = "no triton" if triton_version() is None else "triton {}.{}".format(*triton_version())
        need = "{}.{}".format(*MIN_TRITON_VERSION)
        return f"the Triton kernels need triton >= {need} (found {found}; `pip install -U triton`)"
    if device.type != "cuda" and not (device.type == "cpu" and interpreter_requested()):
        return (
            f"the Triton kernels run on CUDA tensors, or on CPU tensors when TRITON_INTERPRET=1 is set "
            f"before triton is imported, but the inputs are on {device}"
        )
    if group_size is not None and group_size % TRITON_GROUP_MULTIPLE:
        return (
            f"the Triton kernels need `group_size` to be a multiple of {TRITON_GROUP_MULTIPLE} (one packed "
            f"run of codes), got {group_size}"
        )
    return None


@functools.cache
def _warn_fallback(reason: str) -> None:
    # Cached so a model with hundreds of such layers warns once, not once per layer per step.
    warnings.warn(f"qfa_kernels: falling back to the torch backend on CUDA because {reason}.", stacklevel=3)


def selected_backend(
    x: torch.Tensor | torch.device | str,
    *,
    group_size: int | None = None,
    backend: str | None = None,
) -> str:
    """The backend :func:`qfa_kernels.wna16_linear` uses for inputs like ``x``.

    Args:
        x (`torch.Tensor`, `torch.device` or `str`):
            The activations, or just their device.
        group_size (`int`, *optional*):
            Group size of the weight; a size the Triton kernels do not take sends ``auto`` to torch.
        backend (`str`, *optional*):
            ``"auto"``, ``"triton"`` or ``"torch"``; defaults to ``$QFA_KERNEL_BACKEND`` or ``"auto"``.

    Returns:
        `str`: ``"triton"`` or ``"torch"``.

    Raises:
        `ImportError`: ``triton`` is forced but not installed (or too old).
        `ValueError`: ``triton`` is forced for inputs the kernels cannot take (device, group size).
    """
    choice = requested_backend(backend)
    if choice == "torch":
        return "torch"
    device = x.device if isinstance(x, torch.Tensor) else torch.device(x)
    reason = triton_unsupported_reason(device, group_size)
    if choice == "triton":
        if reason is not None:
            error = ImportError if not is_triton_available() else ValueError
            raise error(f"The triton backend was forced, but {reason}. Fix that, or use backend='torch'.")
        return "triton"
    if device.type != "cuda":
        return "torch"
    if reason is not None:
        _warn_fallback(reason)
        return "torch"
    return "triton"
