"""The one backend dispatcher: which matmul runs ``y = x @ W^T + b`` for a packed weight.

Every layer class (:class:`~peft_qfa.supernet.layer.QFALinear`, :class:`~peft_qfa.supernet.packed_layer.QFAPackedLinear`)
calls :func:`layer_forward`, and the search's cached float weights plug in through
:func:`use_weight_cache`; nothing patches a ``forward``. The order of the checks:

1. ``"cached"``: inside :func:`use_weight_cache` and without a gradient, the float weight of each
   (layer, bit-width, dtype) is dequantized once and reused (the search's many forward passes).
2. ``"cpu-int4"``: a packed layer on the CPU with bfloat16 inputs and no gradient runs torch's int4
   kernel (:mod:`peft_qfa.quant.cpu_int4`), when the weight fits it and ``QFA_CPU_INT4`` is not ``0``.
3. ``"triton"``: CUDA inputs (or ``QFA_KERNEL_BACKEND=triton``) run the ``qfa_kernels`` kernel,
   unless ``qfa_kernels`` itself falls back to its torch reference (it says why, once).
4. ``"torch"``: dequantize, then ``F.linear`` (the reference; training on the CPU runs it).

The environment switches (``QFA_KERNEL_BACKEND``, ``QFA_CPU_INT4``) are read once, by
:func:`switches`; call :func:`refresh_switches` after changing them in a running process.
:func:`selected_backend` answers which path a call takes.

Backward always re-dequantizes the weight instead of keeping it from the forward pass: autograd
through a plain ``F.linear(x, W)`` would hold every layer's full-precision ``W`` until backward,
which is exactly the memory a quantized supernet exists to save. The weight is frozen, so only
``x`` (and hence the adapters of earlier layers) gets a gradient.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .quant import QuantizedWeight
from .quant.cpu_int4 import Int4CpuWeight, cpu_int4_supports

BACKENDS = ("cached", "cpu-int4", "triton", "torch")
KERNEL_BACKEND_ENV = "QFA_KERNEL_BACKEND"
CPU_INT4_ENV = "QFA_CPU_INT4"


@dataclass(frozen=True)
class Switches:
    """The environment's say in the dispatch: ``kernel_backend`` is ``QFA_KERNEL_BACKEND`` (``None``:
    unset, i.e. ``auto``), ``cpu_int4`` is False when ``QFA_CPU_INT4=0``."""

    kernel_backend: str | None
    cpu_int4: bool


@functools.cache
def switches() -> Switches:
    """The environment switches, read once per process (see :func:`refresh_switches`)."""
    return Switches(
        kernel_backend=os.environ.get(KERNEL_BACKEND_ENV) or None,
        cpu_int4=os.environ.get(CPU_INT4_ENV, "1") != "0",
    )


def refresh_switches() -> Switches:
    """Read the environment switches again (after a test or a benchmark changed them)."""
    switches.cache_clear()
    return switches()


_WEIGHT_CACHE: contextvars.ContextVar[Any] = contextvars.ContextVar("qfa_weight_cache", default=None)


@contextlib.contextmanager
def use_weight_cache(cache: Any) -> Iterator[None]:
    """Within the block, layers without a gradient compute with ``cache.weight(layer, dtype)``
    (e.g. :class:`peft_qfa.search.weight_cache.DequantizedWeightCache`); ``None`` turns it off."""
    token = _WEIGHT_CACHE.set(cache)
    try:
        yield
    finally:
        _WEIGHT_CACHE.reset(token)


def _needs_grad(x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


def _int4_weight(layer: Any) -> Int4CpuWeight | None:
    """The layer's weight repacked for the CPU int4 kernel, rebuilt whenever the stored tensors change
    (``load_state_dict`` writes new values in place, ``load_quantized`` swaps the tensors). Called on
    every token, so the check reads the three tensors directly."""
    bits = layer.active_bits
    stored = (getattr(layer, f"b{bits}_{part}") for part in ("packed", "scales", "zeros"))
    key = tuple((t.data_ptr(), t._version) for t in stored)
    cached = getattr(layer, "_int4_cache", None)
    if cached is None or cached[0] != key:
        qweight = layer.quantized()
        weight = Int4CpuWeight.from_quantized(qweight) if cpu_int4_supports(qweight) else None
        layer._int4_cache = cached = (key, weight)
    return cached[1]


def _kernel_backend(x: torch.Tensor, group_size: int) -> str:
    """``"triton"`` or ``"torch"`` for the ``qfa_kernels`` path (CUDA, or ``QFA_KERNEL_BACKEND=triton``)."""
    requested = switches().kernel_backend
    if x.device.type != "cuda" and requested != "triton":
        return "torch"
    import qfa_kernels

    return qfa_kernels.selected_backend(x, group_size=group_size, backend=requested or "auto")


def selected_backend(layer: Any, x: torch.Tensor) -> str:
    """The backend :func:`layer_forward` uses for ``layer`` on inputs like ``x`` (one of :data:`BACKENDS`)."""
    if not _needs_grad(x):
        if _WEIGHT_CACHE.get() is not None:
            return "cached"
        if (
            getattr(layer, "supports_cpu_int4", False)
            and x.device.type == "cpu"
            and x.dtype == torch.bfloat16
            and switches().cpu_int4
            and _int4_weight(layer) is not None
        ):
            return "cpu-int4"
    return _kernel_backend(x, layer.group_size)


def _matmul(x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None, backend: str) -> torch.Tensor:
    if backend == "triton":
        import qfa_kernels

        return qfa_kernels.wna16_linear(
            x,
            qweight.packed,
            qweight.scales,
            qweight.zeros,
            bits=qweight.bits,
            group_size=qweight.group_size,
            in_features=qweight.in_features,
            bias=bias,
            backend="triton",
        )
    # The torch reference: the core's gather-free unpack (qfa_kernels' own torch backend is a readable
    # reference, several times slower; training on CPU runs this path on every step).
    weight = qweight.dequantize(x.dtype)
    return F.linear(x, weight, None if bias is None else bias.to(x.dtype))


class _QuantizedLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, qweight, backend):
        ctx.qweight = qweight
        return _matmul(x, qweight, bias, backend)

    @staticmethod
    def backward(ctx, grad_out):
        weight = ctx.qweight.dequantize(grad_out.dtype)
        return grad_out @ weight, None, None, None


def _check_features(x: torch.Tensor, in_features: int) -> None:
    if x.shape[-1] != in_features:
        raise ValueError(f"Input has {x.shape[-1]} features but the quantized weight expects {in_features}.")


def quantized_linear(x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Linear layer over a frozen quantized weight (kernel or torch reference); gradients flow to ``x`` only."""
    _check_features(x, qweight.in_features)
    backend = _kernel_backend(x, qweight.group_size)
    if _needs_grad(x):
        return _QuantizedLinearFunction.apply(x, bias, qweight, backend)
    return _matmul(x, qweight, bias, backend)


def layer_forward(layer: Any, x: torch.Tensor) -> torch.Tensor:
    """The forward of every bit-selectable layer: its active weight through :func:`selected_backend`'s path."""
    _check_features(x, layer.in_features)
    backend = selected_backend(layer, x)
    bias = layer.bias
    if backend == "cached":
        return F.linear(x, _WEIGHT_CACHE.get().weight(layer, x.dtype), None if bias is None else bias.to(x.dtype))
    if backend == "cpu-int4":
        return _int4_weight(layer).linear(x, bias)
    if x.device.type != "cpu" and getattr(layer, "_int4_cache", None) is not None:
        layer._int4_cache = None  # moved off the CPU: drop the repacked CPU copy
    qweight = layer.quantized()
    if _needs_grad(x):
        return _QuantizedLinearFunction.apply(x, bias, qweight, backend)
    return _matmul(x, qweight, bias, backend)


__all__ = [
    "BACKENDS",
    "Switches",
    "layer_forward",
    "quantized_linear",
    "refresh_switches",
    "selected_backend",
    "switches",
    "use_weight_cache",
]
