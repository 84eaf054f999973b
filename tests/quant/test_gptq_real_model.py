"""GPTQ against round-to-nearest on the real SmolLM2-135M weights (slow: loads the real model)."""

import pytest
import torch
from torch import nn

from peft_qfa.quant import HessianAccumulator, gptq_quantize, quantize_rtn
from peft_qfa.quant.grid import dequantize

pytestmark = pytest.mark.slow

BLOCKS = (0, 15)  # first block and a middle one
GROUP_SIZE = 64  # the GGUF weights sit on a g32 4-bit grid already; g64 is a fair test


@pytest.fixture(scope="module")
def layers_and_hessians():
    from peft_qfa.testing import austen_texts, load_smollm2

    model, tokenizer = load_smollm2()
    train_texts, _ = austen_texts()
    ids = tokenizer(train_texts[0][:200_000], return_tensors="pt").input_ids[0][: 16 * 512].reshape(16, 512)
    targets = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and any(name.startswith(f"model.layers.{b}.") for b in BLOCKS)
    }
    accs = {name: HessianAccumulator(m.in_features, name) for name, m in targets.items()}
    handles = [m.register_forward_pre_hook(lambda mod, args, n=n: accs[n].add(args[0])) for n, m in targets.items()]
    with torch.no_grad():
        for batch in ids.split(4):
            model(input_ids=batch)
    for handle in handles:
        handle.remove()
    return {name: (m.weight.detach().clone(), accs[name].hessian()) for name, m in targets.items()}


def output_error(delta: torch.Tensor, hessian: torch.Tensor) -> float:
    """Mean squared output error on the calibration inputs: tr(dW H dW^T) / 2 per output."""
    return float(torch.einsum("oi,ij,oj->", delta, hessian, delta))


def test_gptq_output_error_below_rtn_on_every_layer_and_bitwidth(layers_and_hessians):
    assert len(layers_and_hessians) == 7 * len(BLOCKS)
    for name, (weight, hessian) in layers_and_hessians.items():
        gptq = gptq_quantize(weight, hessian, (2, 3, 4), GROUP_SIZE, layer_name=name)
        for bits, (codes, scales, zeros) in gptq.items():
            gptq_err = output_error(dequantize(codes, scales, zeros, GROUP_SIZE) - weight, hessian)
            rtn_err = output_error(dequantize(*quantize_rtn(weight, bits, GROUP_SIZE), GROUP_SIZE) - weight, hessian)
            assert gptq_err < rtn_err, f"{name} {bits}-bit: GPTQ {gptq_err:.4g} >= RTN {rtn_err:.4g}"
