"""The one bit-packing layout of the project: dense little-endian bit streams in int32 words.

Every consumer (the torch fallback, the Triton kernels in ``qfa_kernels``, the safetensors
serializer and the exporters) reads codes in this layout; change it here only.

Layout
------
Codes ``q[rows, cols]`` with ``0 <= q < 2**bits`` are packed row by row along ``cols``. A row is
cut into *runs* of 32 consecutive codes (the row is padded with zero codes up to a multiple of
32). One run is a stream of ``32 * bits`` bits stored in exactly ``bits`` int32 words. Code ``j``
of a run (``0 <= j < 32``) occupies stream bits ``[j*bits, j*bits + bits)``, least significant bit
first: it starts in word ``(j*bits) // 32`` of the run at shift ``(j*bits) % 32``; when
``shift + bits > 32`` its high bits continue at bit 0 of the next word. Words hold the raw bit
pattern, so a word with its top bit set reads as a negative int32.

This is the "dense" order of compressed-tensors 0.20 ``pack-quantized`` (element ``j`` at bit
``j*b``), so a checkpoint whose ``cols`` is a multiple of 32 exports without repacking. Storage
is exactly ``bits`` bits per code: no waste for 3-bit (a one-code-per-byte or 10-per-word layout
would waste 62% or 6%).

Worked example (bits=3, one run): codes ``q0..q31``. Word 0 holds ``q0`` at bits 0-2, ``q1`` at
3-5, ..., ``q9`` at 27-29 and the low two bits of ``q10`` at 30-31; word 1 starts with the high bit
of ``q10`` at bit 0, then ``q11`` at bits 1-3, ..., the low bit of ``q21`` at bit 31; word 2 holds the
high two bits of ``q21`` at bits 0-1, then ``q22`` at 2-4, ..., ``q31`` at 29-31. For bits=4, code
``j`` is simply the nibble at bits ``4*(j % 8)`` of word ``j // 8``.
"""

from __future__ import annotations

import functools

import torch

from .grid import check_bits

RUN = 32
"""Codes per run; a run of ``bits``-bit codes fills exactly ``bits`` int32 words."""


def packed_cols(cols: int, bits: int) -> int:
    """Number of int32 words one packed row of ``cols`` codes takes."""
    return -(-cols // RUN) * bits


@functools.cache
def _run_plan(bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each code j of a run: its first word, its shift there, and whether it straddles."""
    start = torch.arange(RUN, dtype=torch.int64) * bits
    word = start // 32
    shift = start % 32
    straddles = shift + bits > 32
    return word, shift, straddles


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes ``[rows, cols]`` (values in ``[0, 2**bits)``) into int32 words."""
    bits = check_bits(bits)
    if codes.dim() != 2:
        raise ValueError(f"pack_codes expects 2-D codes [rows, cols], got shape {tuple(codes.shape)}.")
    rows, cols = codes.shape
    codes = codes.to(torch.int64)
    if codes.numel() and (codes.min() < 0 or codes.max() >= 2**bits):
        raise ValueError(f"Codes out of range for {bits}-bit packing: expected values in [0, {2**bits - 1}].")
    n_runs = -(-cols // RUN)
    padded = torch.zeros(rows, n_runs * RUN, dtype=torch.int64, device=codes.device)
    padded[:, :cols] = codes
    runs = padded.reshape(rows, n_runs, RUN)
    word, shift, straddles = (t.to(codes.device) for t in _run_plan(bits))

    words = torch.zeros(rows, n_runs, bits, dtype=torch.int64, device=codes.device)
    # Low part of every code goes to its first word (bits above 32 are masked off below).
    words.index_add_(2, word, runs << shift)
    # High part of a straddling code goes to bit 0 of the next word.
    if straddles.any():
        high = runs[..., straddles] >> (32 - shift[straddles])
        words.index_add_(2, word[straddles] + 1, high)
    words &= 0xFFFFFFFF
    # Reinterpret the unsigned 32-bit pattern as int32.
    words = torch.where(words >= 2**31, words - 2**32, words)
    return words.reshape(rows, n_runs * bits).to(torch.int32)


def unpack_codes(packed: torch.Tensor, bits: int, cols: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: int32 words ``[rows, words]`` -> uint8 codes ``[rows, cols]``.

    Runs on every training forward and backward of the torch path, so it avoids gathers: word
    ``w`` and its successor are joined into one 64-bit value, and every code that *starts* in
    word ``w`` (a contiguous range of ``j``) is cut out of it with one broadcast shift.
    """
    bits = check_bits(bits)
    if packed.dim() != 2 or packed.dtype != torch.int32:
        raise ValueError(
            f"unpack_codes expects 2-D int32 words, got shape {tuple(packed.shape)} and dtype {packed.dtype}."
        )
    rows, n_words = packed.shape
    if n_words != packed_cols(cols, bits):
        raise ValueError(
            f"{n_words} packed words per row cannot hold {cols} {bits}-bit codes "
            f"(expected {packed_cols(cols, bits)})."
        )
    n_runs = n_words // bits
    words = packed.reshape(rows, n_runs, bits).to(torch.int64) & 0xFFFFFFFF
    pieces = []
    for index, (_first, shifts) in enumerate(_codes_by_word(bits, packed.device)):
        joined = words[..., index : index + 1]
        if index + 1 < bits:
            joined = joined | (words[..., index + 1 : index + 2] << 32)
        pieces.append((joined >> shifts) & (2**bits - 1))
    codes = torch.cat(pieces, dim=-1).reshape(rows, n_runs * RUN)[:, :cols]
    return codes.to(torch.uint8)


def _codes_by_word(bits: int, device: torch.device) -> list[tuple[int, torch.Tensor]]:
    """For each word of a run: the first code starting in it and the shifts of all codes that do."""
    word, shift, _ = _run_plan(bits)
    return [(int((word == w).nonzero()[0]), shift[word == w].to(device)) for w in range(bits)]
