"""qfa_kernels: the reference against an independent bit-stream decoder, the Triton kernels against
the reference, backend selection, and bad input.

On a machine without CUDA the Triton cases run through the triton interpreter on tiny shapes
(it executes programs one by one in numpy, ~1000x slower than torch); ``@pytest.mark.gpu`` cases
run real shapes through the autotuned kernels and are skipped without a GPU.
"""

import os

import torch

if not torch.cuda.is_available():
    # Must precede the first `import triton` anywhere in the process.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import ast  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import qfa_kernels  # noqa: E402
from qfa_kernels import dequantize, reference_linear, selected_backend, unpack_codes, wna16_linear  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
PACKAGE_DIR = Path(qfa_kernels.__file__).resolve().parent
KERNEL_REPO = PACKAGE_DIR.parents[2]  # .../kernels (holds build/torch-universal/metadata.json)

# Kernel output vs the float32 reference, relative to an output of order one. Half precision
# differs by the final rounding and, in the GEMM, by rounding the weight to x.dtype before tl.dot.
TOLERANCE = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


# ----------------------------------------------------------------------------------------------
# Independent layout helpers: the packed row read as ONE little-endian bit stream, code k at stream
# bits [k*bits, (k+1)*bits). Written from the spec without runs, words-per-run or straddling cases,
# so a mistake in the package's run/shift arithmetic cannot cancel out here.
# ----------------------------------------------------------------------------------------------


def pack_bitstream(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes ``[rows, cols]`` bit by bit into int32 words (cols padded to 32)."""
    rows, cols = codes.shape
    padded = torch.zeros(rows, -(-cols // 32) * 32, dtype=torch.int64)
    padded[:, :cols] = codes.to(torch.int64)
    stream = (padded[..., None] >> torch.arange(bits)) & 1  # [rows, cols, bits], LSB first
    stream = stream.reshape(rows, -1, 32)  # 32 consecutive stream bits per word
    words = (stream << torch.arange(32)).sum(-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def naive_code(packed_row: list, bits: int, k: int) -> int:
    """Code ``k`` of one packed row, assembled one bit at a time in plain Python."""
    value = 0
    for t in range(bits):
        position = k * bits + t
        word = packed_row[position // 32] & 0xFFFFFFFF
        value |= ((word >> (position % 32)) & 1) << t
    return value


def make_layer(out_features, in_features, bits, group_size, dtype=torch.float16, seed=0, device=DEVICE):
    """Random codes, their packed words, and scales/zeros giving outputs of order one for x ~ N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (out_features, in_features), generator=gen)
    groups = in_features // group_size
    scales = (0.5 + torch.rand(out_features, groups, generator=gen)) * 2 / (2**bits * in_features**0.5)
    zeros = torch.rand(out_features, groups, generator=gen) * (2**bits - 1)  # fractional on purpose
    bias = torch.randn(out_features, generator=gen)
    layer = {
        "packed": pack_bitstream(codes, bits).to(device),
        "scales": scales.to(dtype).to(device),
        "zeros": zeros.to(dtype).to(device),
    }
    return codes, layer, bias.to(dtype).to(device)


def make_x(*shape, dtype=torch.float16, seed=1, device=DEVICE):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype).to(device)


def poisoned(*shape, dtype, device=DEVICE):
    """An output buffer full of NaN: any element a kernel forgets to write fails the comparison."""
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


def assert_matches(actual: torch.Tensor, expected: torch.Tensor) -> None:
    unwritten = torch.isnan(actual) & ~torch.isnan(expected)
    assert not unwritten.any(), (
        f"{int(unwritten.sum())} of {actual.numel()} output elements were never written"
    )
    tol = TOLERANCE[expected.dtype]
    torch.testing.assert_close(actual.float(), expected.float(), atol=tol, rtol=tol)


def call(x, layer, bits, group_size, in_features, **kwargs):
    return wna16_linear(x, **layer, bits=bits, group_size=group_size, in_features=in_features, **kwargs)


def reference(x, layer, bits, group_size, in_features, bias=None):
    return reference_linear(x, **layer, bits=bits, group_size=group_size, in_features=in_features, bias=bias)


# ----------------------------------------------------------------------------------------------
# The reference against the spec.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_unpack_inverts_bitstream_packing(bits):
    # 200 codes: the last run is padded.
    codes = torch.randint(0, 2**bits, (5, 200), generator=torch.Generator().manual_seed(bits))
    packed = pack_bitstream(codes, bits)
    assert packed.shape == (5, qfa_kernels.packed_words(200, bits))
    assert torch.equal(unpack_codes(packed, bits, 200), codes.to(torch.uint8))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_unpack_matches_naive_bit_loop(bits):
    packed = torch.randint(
        -(2**31), 2**31 - 1, (3, 4 * bits), dtype=torch.int32, generator=torch.Generator().manual_seed(7)
    )
    unpacked = unpack_codes(packed, bits, 128)
    # First/last of a word and of a run, the 3-bit straddlers (10, 21) in two runs, the last code.
    for k in (0, 1, 7, 8, 10, 11, 21, 22, 31, 32, 42, 53, 63, 100, 127):
        for row in range(3):
            assert unpacked[row, k].item() == naive_code(packed[row].tolist(), bits, k), (row, k)


def test_layout_worked_examples():
    # 3-bit: code 10 = 0b101 starts at stream bit 30: bits 30 (1) and 31 (0) of word 0, bit 0 (1) of word 1.
    codes = torch.zeros(1, 32, dtype=torch.int64)
    codes[0, 10] = 0b101
    assert pack_bitstream(codes, 3).tolist() == [[1 << 30, 1, 0]]
    assert unpack_codes(torch.tensor([[1 << 30, 1, 0]], dtype=torch.int32), 3, 32).tolist()[0][10] == 5
    # 3-bit: code 21 = 0b011 starts at bit 63: bit 31 of word 1 (a negative int32), bits 0-1 of word 2 (0b01).
    q = unpack_codes(torch.tensor([[0, -(2**31), 0b01]], dtype=torch.int32), 3, 32)[0]
    assert q[21].item() == 0b011 and q.sum().item() == 0b011
    # 4-bit: code j is the nibble at bits 4 * (j % 8) of word j // 8.
    word1 = torch.tensor([[0, 0x9 << 12, 0, 0]], dtype=torch.int32)
    assert unpack_codes(word1, 4, 32)[0].tolist() == [0] * 11 + [9] + [0] * 20


def test_bitstream_packer_agrees_with_project_packer():
    packing = pytest.importorskip("peft_qfa.quant.packing", reason="peft_qfa is not importable here")
    for bits in (2, 3, 4, 8):
        codes = torch.randint(0, 2**bits, (4, 96), generator=torch.Generator().manual_seed(bits))
        assert torch.equal(packing.pack_codes(codes, bits), pack_bitstream(codes, bits)), bits


@pytest.mark.parametrize("bits", [3, 4])
def test_dequantize_applies_group_scale_and_fractional_zero(bits):
    codes, layer, _ = make_layer(6, 128, bits, 32, dtype=torch.float32, device="cpu")
    s = layer["scales"].repeat_interleave(32, dim=1)
    z = layer["zeros"].repeat_interleave(32, dim=1)
    expected = (codes.float() - z) * s
    torch.testing.assert_close(dequantize(**layer, bits=bits, group_size=32, in_features=128), expected)


def test_reference_linear_is_dense_matmul_with_bias():
    codes, layer, bias = make_layer(12, 64, 4, 32, dtype=torch.float32, device="cpu")
    x = make_x(2, 3, 64, dtype=torch.float32, device="cpu")
    weight = dequantize(**layer, bits=4, group_size=32, in_features=64).double()
    expected = (x.double() @ weight.T + bias.double()).float()
    torch.testing.assert_close(reference(x, layer, 4, 32, 64, bias=bias), expected)


# ----------------------------------------------------------------------------------------------
# The torch backend.
# ----------------------------------------------------------------------------------------------


def test_torch_backend_writes_into_out_with_leading_dims():
    _, layer, bias = make_layer(16, 64, 3, 32, device="cpu")
    x = make_x(2, 3, 64, device="cpu")
    out = poisoned(2, 3, 16, dtype=torch.float16, device="cpu")
    result = call(x, layer, 3, 32, 64, bias=bias, backend="torch", out=out)
    assert result is out
    assert_matches(out, reference(x, layer, 3, 32, 64, bias=bias))


def test_zero_rows_give_empty_output():
    _, layer, _ = make_layer(8, 64, 4, 32, device="cpu")
    y = call(make_x(0, 64, device="cpu"), layer, 4, 32, 64, backend="torch")
    assert y.shape == (0, 8)


# ----------------------------------------------------------------------------------------------
# Triton kernels against the reference (interpreter on CPU).
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def triton_launch():
    """The launcher module, or a skip saying why Triton cannot run in this process."""
    pytest.importorskip("triton", reason="triton is not installed")
    from qfa_kernels import triton_launch

    if not CUDA and not triton_launch._interpreted():
        pytest.skip("no CUDA, and triton was imported before TRITON_INTERPRET=1 was set")
    return triton_launch


@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("rows", [3, 17], ids=["gemv", "gemm"])
def test_triton_matches_reference(triton_launch, rows, bits, group_size):
    _, layer, bias = make_layer(40, 256, bits, group_size, seed=bits * 1000 + group_size)
    x = make_x(rows, 256)
    out = poisoned(rows, 40, dtype=torch.float16)
    call(x, layer, bits, group_size, 256, bias=bias, backend="triton", out=out)
    assert_matches(out, reference(x, layer, bits, group_size, 256, bias=bias))


@pytest.mark.parametrize("rows", [1, 2, 5, 16, 20, 33])
def test_triton_ragged_row_counts(triton_launch, rows):
    # 1/2/5/16 rows: GEMV with BLOCK_M 1, 2, 8, 16; 20 and 33: partial GEMM tiles of 16 rows.
    _, layer, _ = make_layer(24, 128, 3, 64, dtype=torch.bfloat16, seed=rows)
    x = make_x(rows, 128, dtype=torch.bfloat16)
    out = poisoned(rows, 24, dtype=torch.bfloat16)
    call(x, layer, 3, 64, 128, backend="triton", out=out)
    assert_matches(out, reference(x, layer, 3, 64, 128))


@pytest.mark.parametrize("x_dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("rows", [4, 18], ids=["gemv", "gemm"])
def test_triton_activation_and_grid_dtypes(triton_launch, rows, x_dtype):
    grid_dtype = torch.float32 if x_dtype != torch.float32 else torch.float16  # mixed on purpose
    _, layer, bias = make_layer(32, 128, 4, 32, dtype=grid_dtype, seed=5)
    x = make_x(rows, 128, dtype=x_dtype)
    out = poisoned(rows, 32, dtype=x_dtype)
    call(x, layer, 4, 32, 128, bias=bias.float(), backend="triton", out=out)
    assert_matches(out, reference(x, layer, 4, 32, 128, bias=bias.float()))


def test_triton_eight_bit(triton_launch):
    _, layer, bias = make_layer(16, 64, 8, 32, seed=8)
    for rows in (2, 17):
        x = make_x(rows, 64)
        out = poisoned(rows, 16, dtype=torch.float16)
        call(x, layer, 8, 32, 64, bias=bias, backend="triton", out=out)
        # 8-bit codes give outputs ~16x larger in absolute terms at the same relative precision.
        expected = reference(x, layer, 8, 32, 64, bias=bias)
        torch.testing.assert_close(out.float(), expected.float(), atol=1e-2, rtol=4e-3)


@pytest.mark.parametrize("leading", [(2, 3), (3, 6)], ids=["gemv", "gemm"])
def test_triton_non_contiguous_inputs(triton_launch, leading):
    _, wide, bias = make_layer(64, 128, 3, 32, seed=11)
    # Every other weight row, and activations with a stride of 2 along K and swapped leading dims.
    layer = {name: tensor[::2] for name, tensor in wide.items()}
    bias = bias[::2]
    x = make_x(leading[1], leading[0], 256).transpose(0, 1)[..., ::2]
    assert not x.is_contiguous() and not layer["packed"].is_contiguous()
    out = poisoned(*leading, 32, dtype=torch.float16)
    y = call(x, layer, 3, 32, 128, bias=bias, backend="triton", out=out)
    assert y.shape == (*leading, 32)
    assert_matches(out, reference(x, layer, 3, 32, 128, bias=bias))


TILE_CASES = {
    # path, rows, bits, group_size, config
    "gemv-wide-k-tile": ("gemv", 3, 4, 128, {"BLOCK_N": 8, "BLOCK_K": 128}),
    "gemv-3bit-4-runs": ("gemv", 1, 3, 128, {"BLOCK_N": 64, "BLOCK_K": 128}),
    "gemv-many-row-blocks": ("gemv", 20, 2, 64, {"BLOCK_N": 16, "BLOCK_K": 64}),
    "gemm-tile-spans-groups": (
        "gemm",
        17,
        3,
        32,
        {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 128, "GROUP_M": 1},
    ),
    "gemm-swizzled-bands": ("gemm", 50, 4, 64, {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 64, "GROUP_M": 2}),
    "gemm-single-row": ("gemm", 1, 2, 32, {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 64, "GROUP_M": 8}),
}


@pytest.mark.parametrize("case", list(TILE_CASES))
def test_triton_tile_configs(triton_launch, case):
    path, rows, bits, group_size, config = TILE_CASES[case]
    _, layer, bias = make_layer(40, 256, bits, group_size, seed=len(case))
    x = make_x(rows, 256)
    out = poisoned(rows, 40, dtype=torch.float16)
    triton_launch.triton_wna16_linear(
        x, layer["packed"], layer["scales"], layer["zeros"], bias, out,
        bits=bits, group_size=group_size, path=path, config=config,
    )  # fmt: skip
    assert_matches(out, reference(x, layer, bits, group_size, 256, bias=bias))


def test_triton_rejects_tiles_that_do_not_fit(triton_launch):
    _, layer, _ = make_layer(8, 64, 4, 32)
    x, out = make_x(2, 64), poisoned(2, 8, dtype=torch.float16)
    args = (x, layer["packed"], layer["scales"], layer["zeros"], None, out)
    with pytest.raises(ValueError, match=r"BLOCK_K=64 does not fit K=64 with group_size=32 on the gemv path"):
        triton_launch.triton_wna16_linear(
            *args, bits=4, group_size=32, path="gemv", config={"BLOCK_N": 8, "BLOCK_K": 64}
        )
    with pytest.raises(ValueError, match=r"needs exactly \['BLOCK_K', 'BLOCK_N'\]"):
        triton_launch.triton_wna16_linear(*args, bits=4, group_size=32, path="gemv", config={"BLOCK_N": 8})
    with pytest.raises(ValueError, match=r"`x` must be a 2-D \[M, K\] tensor"):
        triton_launch.triton_wna16_linear(x[None], *args[1:], bits=4, group_size=32)
    with pytest.raises(ValueError, match=r"`out` has shape \(2, 7\), expected \(2, 8\)"):
        triton_launch.triton_wna16_linear(*args[:-1], out[:, :7], bits=4, group_size=32)
    with pytest.raises(ValueError, match=r"`path`='splitk' is not one of"):
        triton_launch.triton_wna16_linear(*args, bits=4, group_size=32, path="splitk")


def test_forced_triton_rejects_group_size_it_cannot_tile(triton_launch):
    _, layer, _ = make_layer(8, 64, 4, 16)
    with pytest.raises(ValueError, match=r"`group_size` to be a multiple of 32.*got 16.*backend='torch'"):
        call(make_x(2, 64), layer, 4, 16, 64, backend="triton")


# ----------------------------------------------------------------------------------------------
# Backend selection and packaging.
# ----------------------------------------------------------------------------------------------


def test_auto_backend_follows_device(monkeypatch):
    monkeypatch.delenv(qfa_kernels.BACKEND_ENV, raising=False)
    assert selected_backend(torch.zeros(1)) == "torch"
    assert selected_backend("cpu", backend="torch") == "torch"


def test_environment_variable_forces_backend(monkeypatch, triton_launch):
    monkeypatch.setenv(qfa_kernels.BACKEND_ENV, "triton")
    assert selected_backend(DEVICE) == "triton"
    monkeypatch.setenv(qfa_kernels.BACKEND_ENV, "torch")
    assert selected_backend(DEVICE) == "torch"
    assert selected_backend(DEVICE, backend="triton") == "triton"  # the argument wins


def test_unknown_backend_names_are_rejected(monkeypatch):
    with pytest.raises(ValueError, match=r"`backend`='cuda' is not a qfa_kernels backend; choose one of"):
        selected_backend("cpu", backend="cuda")
    monkeypatch.setenv(qfa_kernels.BACKEND_ENV, "fast")
    with pytest.raises(
        ValueError, match=r"environment variable QFA_KERNEL_BACKEND='fast' is not a qfa_kernels"
    ):
        selected_backend("cpu")


def test_forced_triton_on_cpu_needs_the_interpreter(monkeypatch):
    pytest.importorskip("triton", reason="triton is not installed")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match=r"on CPU tensors when TRITON_INTERPRET=1 is set.*inputs are on cpu"):
        selected_backend("cpu", backend="triton")


def test_package_imports_without_triton_and_never_imports_peft_qfa():
    # A fresh interpreter in which `import triton` fails: the package must import, run the torch
    # path, report torch, and refuse a forced triton with an ImportError that says how to install it.
    script = f"""
import sys
sys.path.insert(0, {str(PACKAGE_DIR.parent)!r})
class NoTriton:
    def find_spec(self, name, path=None, target=None):
        if name == "triton" or name.startswith("triton."):
            raise ImportError("blocked for this test")
sys.meta_path.insert(0, NoTriton())
import torch, qfa_kernels
packed = torch.zeros(4, 4, dtype=torch.int32)
y = qfa_kernels.wna16_linear(torch.ones(2, 32), packed, torch.ones(4, 1), torch.zeros(4, 1), bits=4, group_size=32, in_features=32)
assert y.shape == (2, 4) and qfa_kernels.selected_backend("cpu") == "torch"
try:
    qfa_kernels.selected_backend("cpu", backend="triton")
except ImportError as error:
    assert "pip install -U triton" in str(error), error
else:
    raise AssertionError("forced triton without triton did not raise")
assert not any(name.split(".")[0] in ("triton", "peft_qfa") for name in sys.modules), "unexpected import"
print("ok")
"""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_no_module_imports_peft_qfa_or_triton_at_top_level():
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: triton imports inside functions are lazy by design
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not any(n.startswith("peft_qfa") for n in names), f"{path.name} imports peft_qfa"
            if not path.name.startswith("triton_"):
                assert not any(n.startswith("triton") for n in names), f"{path.name} imports triton eagerly"


def test_loads_through_the_kernels_library():
    kernels = pytest.importorskip("kernels", reason="the `kernels` package is not installed")
    if not hasattr(kernels, "get_local_kernel"):  # `python -m pytest` puts the repo root, and so our kernels/, first
        pytest.skip(f"`import kernels` found {list(kernels.__path__)}, not the Hugging Face `kernels` package")
    module = kernels.get_local_kernel(KERNEL_REPO)
    _, layer, _ = make_layer(8, 64, 2, 32, device="cpu")
    x = make_x(3, 64, device="cpu")
    torch.testing.assert_close(
        module.wna16_linear(x, **layer, bits=2, group_size=32, in_features=64, backend="torch"),
        reference(x, layer, 2, 32, 64),
    )


# ----------------------------------------------------------------------------------------------
# Bad input: every message names the argument and the fix.
# ----------------------------------------------------------------------------------------------


def _bad_inputs():
    _, layer, _ = make_layer(8, 64, 4, 32, device="cpu")
    x = make_x(2, 64, device="cpu")
    good = dict(x=x, **layer, bits=4, group_size=32, in_features=64)
    return {
        "x-features": (
            ValueError,
            r"`x` has shape \(2, 48\).*last dimension of `x` must equal `in_features`",
            dict(x=x[:, :48]),
        ),
        "x-dtype": (TypeError, r"`x` has dtype torch.int64; use one of float16", dict(x=x.long())),
        "x-type": (TypeError, r"`x` must be a torch.Tensor, got list", dict(x=x.tolist())),
        "packed-dtype": (TypeError, r"`packed` must hold int32 words", dict(packed=layer["packed"].long())),
        "packed-words": (
            ValueError,
            r"`packed` has shape \(8, 6\).*need \[out_features, 8\] int32 words",
            dict(packed=layer["packed"][:, :6]),
        ),
        "scales-shape": (
            ValueError,
            r"`scales` has shape \(8, 1\), expected \(8, 2\).*group_size=32",
            dict(scales=layer["scales"][:, :1]),
        ),
        "zeros-rows": (
            ValueError,
            r"`zeros` has shape \(4, 2\), expected \(8, 2\)",
            dict(zeros=layer["zeros"][:4]),
        ),
        "scales-dtype": (
            TypeError,
            r"`scales` has dtype torch.float64",
            dict(scales=layer["scales"].double()),
        ),
        "bits": (ValueError, r"`bits`=5 is not supported; choose one of \(2, 3, 4, 8\)", dict(bits=5)),
        "bits-bool": (ValueError, r"`bits`=True is not supported", dict(bits=True)),
        "group-divides": (
            ValueError,
            r"`group_size`=48 does not divide `in_features`=64",
            dict(group_size=48),
        ),
        "group-positive": (ValueError, r"`group_size` must be a positive integer, got 0", dict(group_size=0)),
        "bias-shape": (ValueError, r"`bias` has shape \(7,\), expected \(8,\)", dict(bias=torch.zeros(7))),
        "device": (
            ValueError,
            r"`zeros` is on meta but `x` is on cpu; move all inputs to one device",
            dict(zeros=layer["zeros"].to("meta")),
        ),
        "out-dtype": (
            TypeError,
            r"`out` has dtype torch.float32; it must match `x`",
            dict(out=torch.empty(2, 8)),
        ),
        "out-shape": (
            ValueError,
            r"`out` has shape \(2, 9\), expected \(2, 8\)",
            dict(out=torch.empty(2, 9, dtype=torch.float16)),
        ),
        "out-strided": (
            ValueError,
            r"`out` must be contiguous",
            dict(out=torch.empty(8, 2, dtype=torch.float16).T),
        ),
    }, good


@pytest.mark.parametrize("case", list(_bad_inputs()[0]))
def test_bad_input_is_rejected_before_launch(case):
    cases, good = _bad_inputs()
    error, message, change = cases[case]
    with pytest.raises(error, match=message):
        wna16_linear(**{**good, **change})


# ----------------------------------------------------------------------------------------------
# GPU: real shapes through the autotuned kernels.
# ----------------------------------------------------------------------------------------------

needs_gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (autotuned Triton kernels)")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("rows", [1, 7, 16, 300])
def test_gpu_autotuned_kernels_match_reference(rows, bits, dtype):
    _, layer, bias = make_layer(1000, 2048, bits, 128, dtype=dtype, seed=rows + bits)
    x = make_x(rows, 2048, dtype=dtype)
    assert selected_backend(x, group_size=128) == "triton"
    out = poisoned(rows, 1000, dtype=dtype)
    call(x, layer, bits, 128, 2048, bias=bias, out=out)
    assert_matches(out, reference(x, layer, bits, 128, 2048, bias=bias))


@pytest.mark.gpu
@needs_gpu
def test_gpu_auto_backend_falls_back_for_odd_group_size():
    _, layer, _ = make_layer(64, 96, 4, 48)
    x = make_x(3, 96)
    qfa_kernels.backend._warn_fallback.cache_clear()  # it warns once per process by design
    with pytest.warns(UserWarning, match="falling back to the torch backend"):
        assert selected_backend(x, group_size=48) == "torch"
    assert_matches(call(x, layer, 4, 48, 96), reference(x, layer, 4, 48, 96))
