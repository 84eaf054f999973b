"""The packing layout: round trips, storage density, and the documented bit positions."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from peft_qfa.quant import SUPPORTED_BITS, pack_codes, packed_cols, unpack_codes


@settings(max_examples=60, deadline=None)
@given(
    bits=st.sampled_from(SUPPORTED_BITS),
    rows=st.integers(1, 7),
    n_groups=st.integers(1, 9),
    group_size=st.sampled_from([1, 3, 8, 32, 64]),
    seed=st.integers(0, 2**16),
)
def test_pack_unpack_round_trip(bits, rows, n_groups, group_size, seed):
    cols = n_groups * group_size
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (rows, cols), generator=gen)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.int32
    assert packed.shape == (rows, packed_cols(cols, bits))
    assert torch.equal(unpack_codes(packed, bits, cols).long(), codes)


@pytest.mark.parametrize("bits", SUPPORTED_BITS)
def test_storage_is_exactly_bits_per_code_for_full_runs(bits):
    cols = 4096
    assert packed_cols(cols, bits) * 32 == cols * bits


def test_three_bit_waste_below_seven_percent_for_common_widths():
    for cols in (576, 1536, 4096, 11008):
        stored_bits = packed_cols(cols, 3) * 32
        assert stored_bits / (cols * 3) - 1 < 0.07


def _bit(packed_row: torch.Tensor, index: int) -> int:
    word = int(packed_row[index // 32]) & 0xFFFFFFFF
    return (word >> (index % 32)) & 1


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_code_j_sits_at_stream_bit_j_times_bits(bits):
    """Independent check of the layout docstring: read each code bit by bit from the words."""
    codes = torch.randint(0, 2**bits, (1, 64), generator=torch.Generator().manual_seed(bits))
    packed = pack_codes(codes, bits)[0]
    for j in range(64):
        run, pos = divmod(j, 32)
        base = run * 32 * bits + pos * bits
        value = sum(_bit(packed, base + k) << k for k in range(bits))
        assert value == int(codes[0, j]), j


def test_four_bit_nibble_order():
    codes = torch.arange(16).repeat(1, 2)
    packed = pack_codes(codes, 4)
    assert (int(packed[0, 0]) & 0xFFFFFFFF) == 0x76543210
    assert (int(packed[0, 1]) & 0xFFFFFFFF) == 0xFEDCBA98


def test_bad_packing_input():
    with pytest.raises(ValueError, match="out of range for 2-bit"):
        pack_codes(torch.tensor([[4]]), 2)
    with pytest.raises(ValueError, match="Unsupported bit-width 5"):
        pack_codes(torch.zeros(1, 32, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="cannot hold"):
        unpack_codes(torch.zeros(1, 2, dtype=torch.int32), 3, 32)
