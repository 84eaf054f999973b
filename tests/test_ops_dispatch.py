"""The backend dispatcher (``peft_qfa.ops``): one place picks the matmul, queryably, without patching ``forward``."""

from __future__ import annotations

import torch

from peft_qfa import QFALinear, ops
from peft_qfa.quant import QuantizedWeight
from peft_qfa.search.weight_cache import DequantizedWeightCache


def _layer() -> QFALinear:
    generator = torch.Generator().manual_seed(0)
    layer = QFALinear(64, 16, (2, 4), 32, bias=True, device="meta")
    weights = {}
    for bits in (2, 4):
        codes = torch.randint(0, 2**bits, (16, 64), generator=generator, dtype=torch.uint8)
        scales = torch.rand(16, 2, generator=generator) * 0.05 + 0.01
        zeros = torch.rand(16, 2, generator=generator) * (2**bits - 1)
        weights[bits] = QuantizedWeight.from_codes(codes, scales, zeros, bits, 32)
    layer.load_quantized(weights, bias=torch.randn(16, generator=generator))
    return layer


def test_the_cache_is_a_backend_not_a_patched_forward():
    layer = _layer()
    x = torch.randn(3, 64)
    expected = layer(x)
    assert ops.selected_backend(layer, x) == "torch"
    cache = DequantizedWeightCache()
    with torch.no_grad(), cache.active():
        assert "forward" not in vars(layer)
        assert ops.selected_backend(layer, x) == "cached"
        assert torch.equal(layer(x), expected)
        assert len(cache.weights) == 1
    assert ops.selected_backend(layer, x) == "torch"


def test_a_gradient_bypasses_the_cache_and_reaches_the_input():
    layer = _layer()
    x = torch.randn(3, 64, requires_grad=True)
    with DequantizedWeightCache().active():
        assert ops.selected_backend(layer, x) == "torch"
        layer(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_switches_are_read_once(monkeypatch):
    before = ops.switches()
    monkeypatch.setenv("QFA_CPU_INT4", "0" if before.cpu_int4 else "1")
    assert ops.switches() is before  # not re-read
    try:
        assert ops.refresh_switches().cpu_int4 is not before.cpu_int4
    finally:
        monkeypatch.undo()
        ops.refresh_switches()
