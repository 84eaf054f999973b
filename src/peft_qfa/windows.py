"""Token windows that start the way the model expects: with BOS when its tokenizer adds one.

Llama 2 and 3, Mistral and many other models always saw a beginning-of-sequence token at position
0 in pretraining; their tokenizers add it by default (``tokenizer(text)`` starts with
``bos_token_id``). A window that starts mid-text without it puts the model off-distribution at
every position, which inflates the perplexity and skews what training, calibration and the
search see. Every window the library cuts (training blocks, saved search data, evaluation and
GPTQ calibration windows) therefore follows the tokenizer's own default: :func:`window_bos`
answers whether, and with which id, and :func:`cut_windows` puts it at the start of each window.
Texts are tokenized without special tokens and the BOS is added per window, not per text.
``add_bos=True``/``False`` overrides the tokenizer's default.
"""

from __future__ import annotations

from typing import Any

import torch


def window_bos(tokenizer: Any, add_bos: bool | None = None) -> int | None:
    """The token id every window starts with, or ``None`` for no BOS.

    ``add_bos=None`` follows the tokenizer: BOS when ``tokenizer("a")`` (special tokens on, its
    default) starts with its ``bos_token_id``. ``True`` forces it (the tokenizer must have a BOS
    token), ``False`` turns it off.
    """
    if add_bos is not None and not isinstance(add_bos, bool):
        raise TypeError(f"add_bos must be True, False or None (the tokenizer's default), got {add_bos!r}.")
    if add_bos is False or tokenizer is None:
        if add_bos:
            raise ValueError("add_bos=True needs a tokenizer to take the BOS token id from.")
        return None
    bos = getattr(tokenizer, "bos_token_id", None)
    if add_bos:
        if bos is None:
            raise ValueError(
                f"add_bos=True, but the tokenizer {type(tokenizer).__name__} has no BOS token; pass add_bos=False."
            )
        return int(bos)
    if bos is None:
        return None
    probe = tokenizer("a", verbose=False)["input_ids"]
    return int(bos) if len(probe) and probe[0] == bos else None


def cut_windows(stream: torch.Tensor, seq_len: int, bos: int | None, keep_tail: bool = False) -> list[torch.Tensor]:
    """Non-overlapping windows of ``seq_len`` tokens over a 1-D ``stream``, each led by ``bos`` if given.

    With a BOS every window holds ``seq_len - 1`` tokens of the stream. ``keep_tail`` keeps a last,
    shorter window when it has at least one token to predict.
    """
    body = seq_len - (bos is not None)
    if body < 1:
        raise ValueError(f"seq_len={seq_len} leaves no room for text after the BOS token.")
    full = stream.numel() // body
    rows = list(stream[: full * body].view(full, body)) if full else []
    if keep_tail and stream.numel() - full * body >= (1 if bos is not None else 2):
        rows.append(stream[full * body :])
    if bos is None:
        return rows
    return [torch.cat([stream.new_tensor([bos]), row]) for row in rows]


__all__ = ["cut_windows", "window_bos"]
