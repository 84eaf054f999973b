"""Tile configurations of the Triton kernels: autotune lists per GPU family, pruning, tile rules.

The autotune key holds ``M`` bucketed to a power of two (``M_BUCKET``), so a new batch size reuses
the tuning of its bucket instead of re-tuning, plus the exact ``N``, ``K``, bit-width and group
size (a model has few distinct layer shapes). Configs that cannot run a shape (a K tile that
would cross a quantization group boundary, too many registers, too much shared memory) are pruned
before any of them is compiled.
"""

from __future__ import annotations

import triton

from .layout import RUN

GEMV_MAX_ROWS = 16
"""Calls with at most this many rows of ``x`` take the GEMV (decode) kernel, the rest the GEMM."""

MAX_PRODUCTS_PER_THREAD = 128
"""Register budget of the GEMV's ``[BLOCK_M, BLOCK_N, BLOCK_K]`` product tile, in fp32 per thread."""

# (BLOCK_N, BLOCK_K, num_warps, num_stages). Small BLOCK_N gives many programs for wide K
# (4096 x 11008 down projections) without split-K; large BLOCK_K gives long contiguous loads.
_HOPPER_GEMV = [
    (4, 256, 2, 3),
    (8, 128, 4, 3),
    (8, 256, 4, 3),
    (16, 128, 4, 3),
    (16, 256, 8, 3),
    (32, 128, 8, 3),
    (16, 64, 4, 4),
    (32, 64, 4, 4),
    (16, 32, 4, 4),
]
_AMPERE_GEMV = [
    (4, 256, 2, 2),
    (8, 128, 4, 2),
    (8, 256, 4, 2),
    (16, 128, 4, 2),
    (32, 128, 8, 2),
    (16, 64, 4, 3),
    (16, 32, 4, 3),
]
# (BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages)
_HOPPER_GEMM = [
    (128, 256, 64, 8, 8, 3),
    (128, 128, 64, 8, 8, 3),
    (128, 128, 128, 8, 8, 2),
    (64, 256, 64, 8, 8, 3),
    (128, 64, 64, 8, 4, 4),
    (64, 128, 64, 8, 4, 4),
    (64, 64, 128, 8, 4, 3),
    (32, 128, 128, 8, 4, 3),
    (32, 64, 64, 8, 4, 4),
    (32, 64, 32, 8, 4, 2),
]
_AMPERE_GEMM = [
    (128, 128, 32, 8, 4, 4),
    (128, 128, 64, 8, 8, 3),
    (64, 128, 64, 8, 4, 4),
    (128, 64, 64, 8, 4, 4),
    (64, 64, 64, 8, 4, 4),
    (32, 128, 64, 8, 4, 4),
    (32, 64, 64, 8, 4, 3),
    (32, 64, 32, 8, 4, 2),
]

INTERPRETER_CONFIGS: dict[str, dict[str, int]] = {
    "gemv": {"BLOCK_N": 16, "BLOCK_K": 32},
    "gemm": {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 4},
}
"""Fixed small tiles for the CPU interpreter, where autotuning cannot time anything."""


def next_power_of_2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def bucket_rows(m: int) -> int:
    """Autotune bucket of a row count: the next power of two, capped at 4096."""
    return min(next_power_of_2(m), 4096)


def gemv_tile_fits(block_k: int, K: int, group_size: int) -> bool:
    """GEMV K tiles must be whole runs inside one group (the kernel applies one scale per tile)."""
    return block_k % RUN == 0 and group_size % block_k == 0 and K % block_k == 0


def gemm_tile_fits(block_k: int, K: int, group_size: int) -> bool:
    """GEMM K tiles must be whole runs covering part of one group or whole power-of-two groups."""
    within_group = group_size % block_k == 0
    whole_groups = block_k % group_size == 0 and group_size & (group_size - 1) == 0
    return block_k % RUN == 0 and K % block_k == 0 and (within_group or whole_groups)


def _config(num_warps: int, num_stages: int, **meta: int) -> triton.Config:
    return triton.Config(meta, num_warps=num_warps, num_stages=num_stages)


def autotune_configs(path: str, capability: tuple[int, int]) -> list[triton.Config]:
    """The candidate list of ``path`` (``"gemv"`` or ``"gemm"``) for a GPU of this compute capability."""
    hopper = capability[0] >= 9
    if path == "gemv":
        table = _HOPPER_GEMV if hopper else _AMPERE_GEMV
        return [_config(w, s, BLOCK_N=n, BLOCK_K=k) for n, k, w, s in table]
    table = _HOPPER_GEMM if hopper else _AMPERE_GEMM
    return [_config(w, s, BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, GROUP_M=g) for m, n, k, g, w, s in table]


def _fallback(path: str) -> triton.Config:
    """Always valid (a 32-wide K tile fits any group size the launcher accepts); small and safe."""
    return _config(4, 2, **INTERPRETER_CONFIGS[path])


def prune_gemv_configs(configs, named_args, **kwargs) -> list[triton.Config]:
    args = {**named_args, **kwargs}
    K, N, group_size, block_m = args["K"], args["N"], args["GROUP_SIZE"], args["BLOCK_M"]
    kept = [
        c
        for c in configs
        if gemv_tile_fits(c.kwargs["BLOCK_K"], K, group_size)
        and block_m * c.kwargs["BLOCK_N"] * c.kwargs["BLOCK_K"] <= MAX_PRODUCTS_PER_THREAD * 32 * c.num_warps
        and c.kwargs["BLOCK_N"] <= max(16, next_power_of_2(N))
    ]
    return kept or [_fallback("gemv")]


def _max_shared_memory(device) -> int:
    return triton.runtime.driver.active.utils.get_device_properties(device.index or 0)["max_shared_mem"]


def prune_gemm_configs(configs, named_args, **kwargs) -> list[triton.Config]:
    args = {**named_args, **kwargs}
    K, group_size, bits, x = args["K"], args["GROUP_SIZE"], args["BITS"], args["x_ptr"]
    smem = _max_shared_memory(x.device)
    kept = []
    for c in configs:
        bm, bn, bk = c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"]
        # Pipelined x and packed-word tiles, plus the dequantized weight tile staged for tl.dot.
        smem_needed = (
            c.num_stages * (bm * bk * x.element_size() + bn * bk * bits // 8) + bn * bk * x.element_size()
        )
        if gemm_tile_fits(bk, K, group_size) and bm <= max(32, args["M_BUCKET"]) and smem_needed <= smem:
            kept.append(c)
    return kept or [_fallback("gemm")]
