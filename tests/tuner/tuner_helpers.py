"""Helpers shared by the tuner tests (a plain module, so test files can import it by name)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM

import peft_qfa  # noqa: F401  (registers the "qfa" quantization method and PEFT tuner)
from peft_qfa.supernet.layer import find_bit_layers

BITS = (2, 3, 4)
GROUP_SIZE = 32
VOCAB = 256


def load_supernet(folder: Path) -> nn.Module:
    return AutoModelForCausalLM.from_pretrained(folder).eval()


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


def dequantized_model(supernet_dir: Path, weights: dict) -> nn.Module:
    """A fresh copy of the supernet whose QFA layers are plain ``nn.Linear`` layers holding ``weights`` dequantized."""
    model = load_supernet(supernet_dir)
    layers = find_bit_layers(model)
    if set(layers) != set(weights):
        raise AssertionError(f"merged weights cover {sorted(weights)}, the model has {sorted(layers)}")
    for name, layer in layers.items():
        linear = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(weights[name].dequantize(torch.float32))
            if layer.bias is not None:
                linear.bias.copy_(layer.bias)
        model.set_submodule(name, linear)
    assert not find_bit_layers(model)
    return model.eval()


def adapter_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every adapter parameter by name (all adapters, all bit-widths)."""
    return {name: p for name, p in model.named_parameters() if ".qfa_" in name}


# Random, nonzero adapters for the merge and save/load tests. `init_weights=False` draws B like nn.Linear does,
# which with lora_alpha / r = 2 makes |dW| about 4x |W|, far from a trained adapter, which is a correction of the
# quantized weight. A merged layer stores W + dW in fp32, so its rounding grows with |W + dW|, and the tiny random
# models amplify weight rounding about 10x into their logits: measured, merged-vs-unmerged logits then differ by up
# to 1.3e-5 (relative), exactly as much as the exact W + dW rounded once to fp32 does. With lora_alpha / r = 0.25
# (|dW| about half of |W|) the adapters still move the logits by several percent and the fp32 merge stays well
# inside the 1e-5 acceptance bound.
NONZERO_ADAPTER = {"r": 2, "lora_alpha": 0.5, "init_weights": False}
