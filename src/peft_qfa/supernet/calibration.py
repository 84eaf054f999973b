"""Building the supernet: calibration windows, one Hessian per layer, every bit-width from it.

GPTQ needs each target layer's input Hessian ``H = 2/n X^T X``. The build goes decoder block by
decoder block so that only one block's Hessians and one block's activations are alive at a time:

1. one cheap pass records what every block is called with: each block's ``forward`` is replaced
   by a stub that stores its arguments (attention mask, position embeddings, ... which may differ
   per block, e.g. Qwen2's sliding-window layers) and returns its input unchanged, so the pass
   costs an embedding lookup; the first block's stored input is the calibration activations;
2. for each block: hooks on its target linears accumulate their Hessians while the
   *full-precision* block runs over every calibration batch; its outputs are the next block's
   inputs. Then each target is quantized at every bit-width from its one Hessian
   (:func:`peft_qfa.quant.quantize_weight`), swapped for a ``QFALinear`` and its float weight
   dropped.

A supernet has no single quantized model to propagate, so every block sees full-precision
inputs, and every bit-width of a layer is fitted to the same Hessian (a bits=(4,) build and the
4-bit copies of a bits=(2, 3, 4) build are identical). Targets outside decoder blocks (rare: an
explicitly targeted head) get their Hessians from one full forward pass instead.

Peak memory beyond the model: the calibration activations (two copies), one block's Hessians
(``in_features**2`` floats per layer) and, per layer being quantized, one float working copy of
its weight plus the unpacked ``uint8`` codes of its bit-widths until they are packed.
``method="rtn"`` needs no data and quantizes layer by layer; with ``clip_search=True`` and
calibration data it goes through the same block-by-block pass, because its clipping search
minimises each group's output error through the layer's Hessian (:mod:`peft_qfa.quant.clipping`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.utils import logging
from transformers.utils.logging import is_progress_bar_enabled

from ..quant import HessianAccumulator, quantize_weight
from ..windows import window_bos
from .config import QFAQuantizationConfig
from .integration import install_qfa_linear
from .space import group_of

logger = logging.get_logger(__name__)

CALIBRATION_BATCH_SIZE = 8
"""Calibration windows per forward call; changes speed and peak memory, not the Hessians."""


# ---------------------------------------------------------------------------------------------- data
def _load_tokenizer(tokenizer, model_path: str | None):
    if tokenizer is not None and not isinstance(tokenizer, str):
        return tokenizer
    from transformers import AutoTokenizer

    source = tokenizer or model_path
    if not source:
        raise ValueError(
            "QFA calibration got text but no tokenizer: pass `tokenizer=` to QFAQuantizationConfig, or load the "
            "model from a folder that holds its tokenizer."
        )
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"QFA calibration got text but could not load a tokenizer from `{source}` ({err}). Pass `tokenizer=` "
            "to QFAQuantizationConfig, or calibrate with token ids (a LongTensor [n, seq])."
        ) from err


def _dataset_payload(dataset) -> tuple[str, list]:
    """``("text", texts)`` or ``("ids", token lists)`` from a ``datasets.Dataset``."""
    columns = list(dataset.column_names)
    if "text" in columns:
        return "text", list(dataset["text"])
    if "input_ids" in columns:
        return "ids", list(dataset["input_ids"])
    string_columns = [c for c in columns if len(dataset) and isinstance(dataset[0][c], str)]
    if len(string_columns) == 1:
        return "text", list(dataset[string_columns[0]])
    raise ValueError(
        f"QFA calibration: cannot tell which column of the dataset holds the text (columns {columns}); "
        "rename it to 'text', or pass `calibration=dataset['<column>']`."
    )


def _token_stream(texts: Sequence[str], tokenizer) -> torch.Tensor:
    separator = [tokenizer.eos_token_id] if getattr(tokenizer, "eos_token_id", None) is not None else []
    ids: list[int] = []
    for i, text in enumerate(texts):
        if i and separator:
            ids.extend(separator)
        ids.extend(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    return torch.tensor(ids, dtype=torch.long)


def _windows(stream: torch.Tensor, seq_len: int, n_samples: int, bos: int | None = None) -> torch.Tensor:
    """``n_samples`` non-overlapping windows of ``seq_len`` tokens spread evenly over ``stream``
    (``seq_len - 1`` of them after ``bos`` when given)."""
    if bos is not None:
        body = _windows(stream, seq_len - 1, n_samples)
        return torch.cat([body.new_full((body.shape[0], 1), bos), body], dim=1)
    total = stream.numel()
    available = total // seq_len
    if available == 0:
        raise ValueError(
            f"QFA calibration text is too short: it has {total} tokens, but one calibration window needs "
            f"calibration_seq_len={seq_len}. Pass more text or lower `calibration_seq_len`."
        )
    if available < n_samples:
        warnings.warn(
            f"QFA calibration: {total} tokens give only {available} windows of {seq_len} tokens, fewer than "
            f"calibration_samples={n_samples}; calibrating on {available}.",
            stacklevel=3,
        )
        n_samples = available
    if n_samples == 1:
        starts = [0]
    else:
        step = (total - seq_len) / (n_samples - 1)  # >= seq_len, so windows never overlap
        starts = [int(i * step) for i in range(n_samples)]
    return torch.stack([stream[s : s + seq_len] for s in starts])


def calibration_tokens(
    calibration,
    *,
    seq_len: int,
    n_samples: int,
    tokenizer=None,
    model_path: str | None = None,
    add_bos: bool | None = None,
) -> torch.Tensor:
    """The calibration set as a ``LongTensor [n, seq]`` of token ids.

    A 2-D integer tensor is used as given; texts (a string, a list of strings or a
    ``datasets.Dataset`` with a text column) and 1-D token streams are concatenated and cut into
    ``n_samples`` windows of ``seq_len`` tokens. Windows cut from texts start with the tokenizer's BOS
    when it adds one by default (``add_bos`` overrides; :mod:`peft_qfa.windows`); token ids are used as given.
    """
    if isinstance(calibration, torch.Tensor):
        if calibration.is_floating_point() or calibration.dim() not in (1, 2) or calibration.numel() == 0:
            raise ValueError(
                "QFA calibration tensors must be non-empty integer token ids, [n, seq] or a 1-D stream; got "
                f"{calibration.dtype} {tuple(calibration.shape)}."
            )
        if calibration.dim() == 2:
            return calibration.long()
        return _windows(calibration.long(), seq_len, n_samples)
    if isinstance(calibration, str):
        calibration = [calibration]
    if hasattr(calibration, "column_names"):
        kind, payload = _dataset_payload(calibration)
        if kind == "ids":
            stream = torch.tensor([t for row in payload for t in row], dtype=torch.long)
            return _windows(stream, seq_len, n_samples)
        calibration = payload
    texts = list(calibration)
    if not texts:
        raise ValueError("QFA calibration is empty: pass at least one text.")
    tokenizer = _load_tokenizer(tokenizer, model_path)
    return _windows(_token_stream(texts, tokenizer), seq_len, n_samples, window_bos(tokenizer, add_bos))


# ---------------------------------------------------------------------------------------------- blocks
def _decoder_blocks(
    model: nn.Module, names: list[str]
) -> tuple[str, list[nn.Module], dict[int, list[str]], list[str]]:
    """``(owner name, blocks in order, {block index: its targets}, targets outside blocks)``.

    Blocks are the entries of the one ``nn.ModuleList`` that holds the targets' decoder blocks
    (``model.layers.7`` -> ``model.layers``); its owner (``model``) runs them in order.
    """
    by_block: dict[str, list[str]] = {}
    outside: list[str] = []
    for name in names:
        block = group_of(name, "block")
        (outside if block == name else by_block.setdefault(block, [])).append(name)
    lists = {block.rsplit(".", 1)[0] for block in by_block}
    if len(lists) != 1:
        return "", [], {}, list(names)
    list_name = lists.pop()
    module_list = model.get_submodule(list_name)
    if not isinstance(module_list, nn.ModuleList):
        return "", [], {}, list(names)
    owner_name = list_name.rsplit(".", 1)[0] if "." in list_name else ""
    targets_of = {int(block.rsplit(".", 1)[1]): members for block, members in by_block.items()}
    return owner_name, list(module_list), targets_of, outside


def _split_call(args: tuple, kwargs: dict) -> tuple[torch.Tensor, tuple, dict]:
    if args:
        return args[0], args[1:], kwargs
    kwargs = dict(kwargs)
    return kwargs.pop("hidden_states"), (), kwargs


def _record_block_calls(owner: nn.Module, blocks: list[nn.Module], batches: list[torch.Tensor]):
    """Per batch: the first block's input, and every block's other arguments."""
    calls: list[list[tuple[tuple, dict]]] = [[] for _ in blocks]
    first_inputs: list[torch.Tensor] = []

    def stub(index, *args, **kwargs):
        hidden, rest, kw = _split_call(args, kwargs)
        if index == 0:
            first_inputs.append(hidden)
        calls[index].append((rest, kw))
        return hidden

    for index, block in enumerate(blocks):
        block.forward = partial(stub, index)
    try:
        for batch in batches:
            owner(input_ids=batch, use_cache=False)
    finally:
        for block in blocks:
            del block.forward
    return first_inputs, calls


def _hessian_hooks(model: nn.Module, names: list[str]) -> tuple[dict[str, HessianAccumulator], list]:
    accumulators, handles = {}, []
    for name in names:
        layer = model.get_submodule(name)
        acc = HessianAccumulator(layer.in_features, name, device=layer.weight.device)
        accumulators[name] = acc
        handles.append(layer.register_forward_hook(lambda _m, inputs, _out, acc=acc: acc.add(inputs[0])))
    return accumulators, handles


# ---------------------------------------------------------------------------------------------- build
def _quantize_and_install(model, name, config, hessian, progress) -> None:
    linear = model.get_submodule(name)
    weights = quantize_weight(
        linear.weight,
        config.bits,
        config.group_size,
        method=config.method,
        hessian=hessian,
        dtype=linear.weight.dtype,
        layer_name=name,
        clip_ratios=config.search_clip_ratios,
        **(
            {
                "damp_percent": config.damp_percent,
                "block_size": config.block_size,
                "act_order": config.act_order,
            }
            if config.method == "gptq"
            else {}
        ),
    )
    install_qfa_linear(model, name, linear, config, weights)
    progress.update(1)
    progress.set_postfix_str(name, refresh=False)


@torch.no_grad()
def build_supernet(
    model: nn.Module,
    config: QFAQuantizationConfig,
    target_names: list[str],
    tokens: torch.Tensor | None = None,
    batch_size: int = CALIBRATION_BATCH_SIZE,
) -> None:
    """Replace every linear in ``target_names`` by a ``QFALinear`` quantized at every ``config.bits``.

    ``tokens`` (``LongTensor [n, seq]``) is required for ``method="gptq"``; see the module
    docstring for the order of work and the memory it needs.
    """
    start = time.perf_counter()
    progress = tqdm(
        total=len(target_names),
        desc=f"QFA supernet ({config.method}, bits {'/'.join(map(str, config.bits))})",
        unit="layer",
        disable=not is_progress_bar_enabled(),
    )
    try:
        if config.method == "rtn" and tokens is None:
            for name in target_names:
                _quantize_and_install(model, name, config, None, progress)
        else:
            _build_gptq(model, config, target_names, tokens, batch_size, progress)
    finally:
        progress.close()
    logger.info(
        f"Built the QFA supernet ({len(target_names)} layers) in {time.perf_counter() - start:.1f} s."
    )


def _build_gptq(model, config, target_names, tokens, batch_size, progress) -> None:
    if tokens is None:
        raise ValueError(
            "QFA method='gptq' needs calibration tokens; pass `calibration=` or use method='rtn'."
        )
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None:
        vocab = embeddings.weight.shape[0]
        if tokens.min() < 0 or tokens.max() >= vocab:
            raise ValueError(
                f"QFA calibration token ids must lie in [0, {vocab}) for this model, got "
                f"[{int(tokens.min())}, {int(tokens.max())}]: were they made by another tokenizer?"
            )
        tokens = tokens.to(embeddings.weight.device)
    batches = list(tokens.split(batch_size))
    owner_name, blocks, targets_of, outside = _decoder_blocks(model, target_names)

    # Targets outside decoder blocks: their Hessians come from full forward passes of the
    # still-unquantized model; they are swapped at the very end so block inputs stay full precision.
    outside_hessians = {}
    if outside:
        accumulators, handles = _hessian_hooks(model, outside)
        try:
            for batch in batches:
                model(input_ids=batch, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        outside_hessians = {name: acc.hessian() for name, acc in accumulators.items()}
        del accumulators

    if blocks:
        owner = model.get_submodule(owner_name) if owner_name else model
        hidden, calls = _record_block_calls(owner, blocks, batches)
        last = max(targets_of)
        for index in range(last + 1):
            names = targets_of.get(index, [])
            accumulators, handles = _hessian_hooks(model, names)
            try:
                outputs = []
                for h, (rest, kwargs) in zip(hidden, calls[index], strict=True):
                    out = blocks[index](h, *rest, **kwargs)
                    outputs.append(out[0] if isinstance(out, tuple) else out)
            finally:
                for handle in handles:
                    handle.remove()
            hidden, calls[index] = outputs, None
            for name in names:
                _quantize_and_install(model, name, config, accumulators.pop(name).hessian(), progress)
        del hidden, calls

    for name in outside:
        _quantize_and_install(model, name, config, outside_hessians.pop(name), progress)
