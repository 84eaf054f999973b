"""``materialize``: one subnet of a supernet, adapters merged, packed into a deployable model.

For every linear the subnet's bit-width is kept and every other copy dropped; the QFA adapter of
that bit-width is folded into the zero points by the tuner's merge rule
(:func:`peft_qfa.tuner.merged_quantized_weights`), so the result has no supernet and no adapters:
only :class:`QFAPackedLinear` layers, the full-precision rest (embeddings, norms, head) and a
``"qfa"`` quantization config with ``layer_bits`` that ``save_pretrained`` writes and
``from_pretrained`` reads back.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .._compat import bind_staged_save_pretrained, forget_adapter_loading, mark_quantized
from ..atomic import staged_folder
from ..supernet.config import QFAQuantizationConfig, qfa_config, unwrap_model
from ..supernet.integration import mark_needs_peft_qfa
from ..supernet.layer import BitSelectableLayer, find_bit_layers
from ..supernet.packed_layer import QFAPackedLinear
from ..supernet.space import SearchSpace, Subnet
from ..supernet.subnet import get_subnet, search_space
from ..tuner import adapter_variants, merged_quantized_weights
from .compact import compact
from .hub import attach_qfa_push_to_hub


def deployed_config(
    source: QFAQuantizationConfig,
    subnet: Subnet,
    selection: Mapping[str, Any] | None = None,
    deploy_dtype: str | None = None,
    embedding_bits: int | None = None,
    variants: Mapping[str, str] | None = None,
) -> QFAQuantizationConfig:
    """The quantization config of the materialized ``subnet``: the supernet's settings plus ``layer_bits``
    (``deploy_dtype`` / ``embedding_bits``, when given, override the supernet's; ``selection`` also records
    the variant of each adapter that went into it, for the model card)."""
    config = copy.deepcopy(source)
    if deploy_dtype is not None:
        config.deploy_dtype = deploy_dtype
    if embedding_bits is not None:
        config.embedding_bits = embedding_bits
    config.post_init()
    config.layer_bits = subnet.layer_bits()
    config.bits = tuple(sorted(set(config.layer_bits.values())))
    config.selection = dict(selection) if selection is not None else {"bits_per_group": dict(subnet)}
    config.budget = None
    if variants:
        config.selection["adapter_variants"] = dict(variants)
    for name in ("calibration", "tokenizer", "search_data", "search_options"):
        setattr(config, name, None)
    return config


def _resolve_subnet(
    model: nn.Module, subnet: Subnet | Mapping[str, int] | None, space: SearchSpace | None = None
) -> Subnet:
    """``subnet`` as a :class:`Subnet` of the model's space (``space``, when the caller built it already)."""
    if subnet is None:
        return get_subnet(model)
    return (search_space(model) if space is None else space).subnet(subnet)


def _packed_layers(model: nn.Module, subnet: Subnet, adapter_name: str | None) -> dict[str, QFAPackedLinear]:
    """``{layer name: QFAPackedLinear}`` for every supernet layer, adapters merged."""
    merged = merged_quantized_weights(model, subnet, adapter_name)
    layers = find_bit_layers(model)
    return {
        name: QFAPackedLinear.from_quantized(qweight, layers[name].bias) for name, qweight in merged.items()
    }


def finish_deployed(model: nn.Module, config: QFAQuantizationConfig) -> None:
    """Give a model whose layers are now packed the state a ``from_pretrained`` of it would have."""
    left = [
        name
        for name, m in model.named_modules()
        if isinstance(m, BitSelectableLayer) and not isinstance(m, QFAPackedLinear)
    ]
    if left:
        raise RuntimeError(f"materialize: supernet layers were left behind, e.g. {left[:3]}.")
    forget_adapter_loading(model)
    mark_needs_peft_qfa(model.config)
    mark_quantized(model, config)  # the "qfa" quantizer comes from transformers' registry (peft_qfa.integrations)
    model.requires_grad_(False)
    model.eval()
    attach_qfa_push_to_hub(model)
    bind_staged_save_pretrained(model, staged_folder)


@torch.no_grad()
def materialize(
    model: nn.Module,
    subnet: Subnet | Mapping[str, int] | None = None,
    *,
    adapter_name: str | None = None,
    selection: Mapping[str, Any] | None = None,
    deploy_dtype: str | None = None,
    embedding_bits: int | None = None,
) -> nn.Module:
    """Merge, pack and return ``subnet`` of ``model`` as a new deployable model; ``model`` is unchanged.

    Args:
        model (`nn.Module`): a QFA supernet, bare or with QFA adapters (a ``PeftModel``).
        subnet (`Subnet` or `dict[str, int]`, *optional*): the bit-width per group; defaults to the
            subnet the model runs now (``peft_qfa.get_subnet(model)``).
        adapter_name (`str`, *optional*): which adapter to merge; defaults to the active one(s).
        selection (`dict`, *optional*): how the subnet was chosen (written into the config for the
            model card; :func:`peft_qfa.from_pretrained` fills it from the search).
        deploy_dtype (`str`, *optional*): ``"auto"`` (16 bits), ``"float16"``, ``"bfloat16"`` or
            ``"float32"`` (exact merged zero points); defaults to the supernet config's (``"auto"``).
        embedding_bits (`int`, *optional*): ``8`` or ``4`` packs the embedding and the head too;
            defaults to the supernet config's (``None``: kept in the deploy dtype).

    Returns:
        The transformers model class of the supernet, with :class:`QFAPackedLinear` layers and a
        ``"qfa"`` config carrying ``layer_bits``; ``save_pretrained`` / ``from_pretrained`` /
        ``push_to_hub`` work on it, and ``peft_qfa.get_subnet`` reports its fixed bits.

    Example:

    ```python
    >>> sub = peft_qfa.search_space(peft_model).uniform(3)
    >>> packed = peft_qfa.materialize(peft_model, sub)
    >>> packed.save_pretrained("model-3bit/")
    ```
    """
    base = unwrap_model(model)
    source = qfa_config(base)
    if source.materialized:
        raise ValueError(
            "materialize: this model is already a materialized subnet (one bit-width per layer); materialize from "
            "the supernet it came from."
        )
    chosen = _resolve_subnet(model, subnet)
    packed = _packed_layers(model, chosen, adapter_name)
    # Copy everything but the supernet layers (and their adapter wrappers): the memo maps each of them to a
    # placeholder, so their bit-width copies are never duplicated, and ties between the other weights survive.
    memo: dict[int, Any] = {id(base.get_submodule(name)): nn.Identity() for name in packed}
    memo[id(getattr(base, "hf_quantizer", None))] = None
    deployed = copy.deepcopy(base, memo)
    for name, layer in packed.items():
        deployed.set_submodule(name, layer)
    variants = adapter_variants(model, adapter_name)
    config = deployed_config(source, chosen, selection, deploy_dtype, embedding_bits, variants)
    compact(deployed, config)
    finish_deployed(deployed, config)
    return deployed


@torch.no_grad()
def materialize_in_place(
    model: nn.Module,
    subnet: Subnet | Mapping[str, int],
    *,
    adapter_name: str | None = None,
    selection: Mapping[str, Any] | None = None,
    space: SearchSpace | None = None,
) -> nn.Module:
    """Like :func:`materialize`, but replace the layers of ``model`` itself (a bare transformers model,
    adapters possibly injected by ``load_adapter``): no second copy of the full-precision weights.
    Used when ``from_pretrained`` loads a supernet with a budget (which passes the ``space`` it built)."""
    source = qfa_config(model)
    chosen = _resolve_subnet(model, subnet, space)
    packed = _packed_layers(model, chosen, adapter_name)
    variants = adapter_variants(model, adapter_name)
    for name, layer in packed.items():
        model.set_submodule(name, layer)
    config = deployed_config(source, chosen, selection, variants=variants)
    compact(model, config)
    finish_deployed(model, config)
    return model


__all__ = [
    "deployed_config",
    "finish_deployed",
    "materialize",
    "materialize_in_place",
    "qfa_config",
    "unwrap_model",
]
