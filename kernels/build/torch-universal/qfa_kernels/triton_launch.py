"""Launch the Triton kernels: pick the GEMV or GEMM path, the tiles, the grid; check before launch.

Importing this module imports triton, so only :mod:`.linear` imports it, and only after
:func:`qfa_kernels.selected_backend` chose triton.
"""

from __future__ import annotations

import functools

import torch
import triton

from .layout import TRITON_GROUP_MULTIPLE
from .triton_configs import (
    GEMV_MAX_ROWS,
    INTERPRETER_CONFIGS,
    autotune_configs,
    bucket_rows,
    gemm_tile_fits,
    gemv_tile_fits,
    next_power_of_2,
    prune_gemm_configs,
    prune_gemv_configs,
)
from .triton_gemm import _wna16_gemm_kernel
from .triton_gemv import _wna16_gemv_kernel
from .validation import check_linear_args

PATHS: tuple[str, ...] = ("gemv", "gemm")
_KERNELS = {"gemv": _wna16_gemv_kernel, "gemm": _wna16_gemm_kernel}
_PRUNERS = {"gemv": prune_gemv_configs, "gemm": prune_gemm_configs}
_TILE_RULES = {"gemv": gemv_tile_fits, "gemm": gemm_tile_fits}
_CONFIG_KEYS = {"gemv": {"BLOCK_N", "BLOCK_K"}, "gemm": {"BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M"}}
_LAUNCH_KEYS = {"num_warps", "num_stages"}


def _interpreted() -> bool:
    """Whether triton decorated the kernels for its CPU interpreter (``TRITON_INTERPRET=1`` at import)."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:
        return False
    return isinstance(_wna16_gemv_kernel, InterpretedFunction)


@functools.cache
def _autotuned(path: str, capability: tuple[int, int]):
    return triton.autotune(
        configs=autotune_configs(path, capability),
        key=["M_BUCKET", "N", "K", "BITS", "GROUP_SIZE"],
        prune_configs_by={"early_config_prune": _PRUNERS[path]},
    )(_KERNELS[path])


def _check_config(path: str, config: dict, K: int, group_size: int) -> None:
    unknown = set(config) - _CONFIG_KEYS[path] - _LAUNCH_KEYS
    missing = _CONFIG_KEYS[path] - set(config)
    if unknown or missing:
        raise ValueError(
            f"triton_wna16_linear: `config` for the {path} path needs exactly {sorted(_CONFIG_KEYS[path])} "
            f"(plus optional num_warps/num_stages); unknown {sorted(unknown)}, missing {sorted(missing)}."
        )
    if not _TILE_RULES[path](config["BLOCK_K"], K, group_size):
        raise ValueError(
            f"triton_wna16_linear: BLOCK_K={config['BLOCK_K']} does not fit K={K} with group_size={group_size} "
            f"on the {path} path; use a multiple of 32 that divides the group size (32 always works)."
        )


def triton_wna16_linear(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    bias: torch.Tensor | None,
    out: torch.Tensor,
    *,
    bits: int,
    group_size: int,
    path: str | None = None,
    config: dict | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Check the arguments, then write ``x @ dequantize(W)^T + bias`` into ``out`` with Triton.

    The direct entry to the kernels (tests use it to force a path or a tile); prefer
    :func:`qfa_kernels.wna16_linear`, which also flattens leading dimensions and picks the backend.

    Args:
        x (`torch.Tensor`): ``[M, K]`` activations, any strides.
        packed, scales, zeros, bias: The layer, as in :func:`qfa_kernels.wna16_linear`.
        out (`torch.Tensor`): Contiguous ``[M, N]`` output of ``x.dtype``.
        bits (`int`): Bits per code.
        group_size (`int`): A multiple of 32.
        path (`str`, *optional*):
            ``"gemv"`` or ``"gemm"``; defaults to GEMV for at most ``GEMV_MAX_ROWS`` rows.
        config (`dict`, *optional*):
            Explicit tile sizes (and optionally ``num_warps``/``num_stages``) instead of autotuning
            (GPU) or the fixed interpreter tiles (CPU).
        validate (`bool`, defaults to `True`):
            ``False`` skips ``check_linear_args``, for a caller that has already run it on these
            arguments: :func:`qfa_kernels.wna16_linear` does, so that it validates once per call, not
            twice (at decode sizes the Python checks cost about as much as the kernel). The checks
            that only the Triton path needs (group size, ``path``, ``config``) always run.
    """
    if validate and (not isinstance(x, torch.Tensor) or x.dim() != 2):
        raise ValueError(
            f"triton_wna16_linear: `x` must be a 2-D [M, K] tensor, got {getattr(x, 'shape', x)!r}."
        )
    M, K = x.shape
    if validate:
        check_linear_args(
            x, packed, scales, zeros, bits=bits, group_size=group_size, in_features=K, bias=bias, out=out
        )
    if group_size % TRITON_GROUP_MULTIPLE:
        raise ValueError(
            f"triton_wna16_linear: `group_size`={group_size} is not a multiple of {TRITON_GROUP_MULTIPLE}; the "
            "Triton kernels read whole 32-code runs per group. Use the torch backend for this layer."
        )
    N = packed.shape[0]
    if path is None:
        path = "gemv" if M <= GEMV_MAX_ROWS else "gemm"
    if path not in PATHS:
        raise ValueError(f"triton_wna16_linear: `path`={path!r} is not one of {PATHS}.")
    if M == 0 or N == 0:
        return out

    if bias is not None:
        bias = bias.contiguous()  # the kernels index bias with unit stride; it is only N values
    meta = {"M_BUCKET": bucket_rows(M), "BITS": bits, "GROUP_SIZE": group_size, "HAS_BIAS": bias is not None}
    if path == "gemv":
        meta["BLOCK_M"] = min(next_power_of_2(M), GEMV_MAX_ROWS)

        def grid(meta):
            return triton.cdiv(N, meta["BLOCK_N"]), triton.cdiv(M, meta["BLOCK_M"])
    else:
        meta["DOT_FP32"] = x.dtype == torch.float32 or (x.dtype == torch.bfloat16 and _interpreted())

        def grid(meta):
            return (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)

    args = (
        x,
        packed,
        scales,
        zeros,
        out if bias is None else bias,  # any pointer will do: HAS_BIAS=False never reads it
        out,
        M,
        N,
        K,
        *x.stride(),
        *packed.stride(),
        *scales.stride(),
        *zeros.stride(),
        *out.stride(),
    )
    if config is None and _interpreted():
        config = INTERPRETER_CONFIGS[path]
    if config is not None:
        _check_config(path, config, K, group_size)
        _KERNELS[path][grid](*args, **meta, **config)
    else:
        capability = torch.cuda.get_device_capability(x.device)
        with torch.cuda.device(x.device):
            _autotuned(path, capability)[grid](*args, **meta)
    return out
