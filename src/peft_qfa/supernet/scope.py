"""Which models a QFA supernet is built from: decoder-only causal language models.

LLM-QFA quantizes the linears of a decoder-only LM block by block and searches one bit-width per
decoder block. On other architectures the build would still run but mean something else: an
encoder's classifier head would be quantized, and block granularity would fall back to one group
per layer because there are no decoder blocks to find. So such models are refused up front unless
the user opts in with ``QFAQuantizationConfig(allow_any_model=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .space import group_of

SUPPORTED = (
    "decoder-only causal language models loaded with AutoModelForCausalLM (LLaMA, Qwen2, Mistral, Gemma, Phi, "
    "...), whose linears sit in numbered decoder blocks"
)


def _causal_lm_classes() -> set[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())


def unsupported_reason(model: nn.Module, target_names: Sequence[str], granularity: str) -> str | None:
    """Why ``model`` is outside the supported scope, or ``None``."""
    config = getattr(model, "config", None)
    kind = type(model).__name__
    if getattr(config, "is_encoder_decoder", False):
        return f"{kind} is an encoder-decoder model"
    if kind not in _causal_lm_classes():
        return f"{kind} is not a causal language model class (AutoModelForCausalLM)"
    encoders = [name for name, _ in model.named_modules() if name.split(".")[-1] == "encoder"]
    if encoders:
        return f"{kind} has an encoder (`{encoders[0]}`), not decoder blocks"
    if granularity == "block":
        get_head = getattr(model, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        loose = [
            name for name in target_names if group_of(name, "block") == name and model.get_submodule(name) is not head
        ]
        if loose:
            return f"{kind}'s target layers {loose[:3]} are in no numbered decoder block (`...layers.N.`)"
    return None


def check_supported_model(model: nn.Module, config, target_names: Sequence[str]) -> None:
    """Refuse a model outside :data:`SUPPORTED` unless ``config.allow_any_model`` (see the module docstring)."""
    if getattr(config, "allow_any_model", False):
        return
    reason = unsupported_reason(model, target_names, config.granularity)
    if reason:
        raise ValueError(
            f"QFAQuantizationConfig: {reason}. QFA supernets support {SUPPORTED}. To build one anyway (at your own "
            "risk: heads get quantized, groups may fall back to single layers), pass "
            "QFAQuantizationConfig(..., allow_any_model=True)."
        )




def conv1d_message(model: nn.Module) -> None:
    """Refuse a model whose projections are transformers' ``Conv1D`` (GPT-2 style) by naming that layer type."""
    from transformers.pytorch_utils import Conv1D

    conv = [name for name, m in model.named_modules() if isinstance(m, Conv1D)]
    if conv:
        raise ValueError(
            f"{type(model).__name__} keeps its projections in transformers' Conv1D layers (e.g. `{conv[0]}`), which "
            "QFA supernets do not support: only nn.Linear layers are quantized. Use a model with nn.Linear "
            f"projections ({SUPPORTED})."
        )


__all__ = ["SUPPORTED", "check_supported_model", "conv1d_message", "unsupported_reason"]
