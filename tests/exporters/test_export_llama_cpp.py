"""The real model in llama.cpp: SmolLM2's GGUF export gives our greedy tokens and our tokenization (slow)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa import QFAQuantizationConfig

pytestmark = pytest.mark.slow
llama_cpp = pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed (pip install llama-cpp-python; it compiles llama.cpp)",
)

NEW_TOKENS = 16


def llama_greedy(llm, prompt: list[int], n: int) -> list[int]:
    """``n`` greedy tokens from llama.cpp's own sampler (``temp=0`` samples greedily)."""
    tokens = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
        tokens.append(int(token))
        if len(tokens) == n:
            return tokens
    return tokens


def test_smollm2_gguf_export_runs_in_llama_cpp_with_our_greedy_tokens(tmp_path):
    from peft_qfa.testing import austen_texts, smollm2_path

    path = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    supernet = AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=QFAQuantizationConfig(bits=(3, 4), group_size=64, method="rtn"),
        dtype=torch.float32,
    )
    space = peft_qfa.search_space(supernet)
    subnet = {group: 3 if i % 5 == 4 else 4 for i, group in enumerate(space.uniform(4))}  # mixed 3/4 bits
    packed = peft_qfa.materialize(supernet, subnet).eval()
    del supernet
    gguf_file = peft_qfa.export(packed, tmp_path / "smollm2.gguf", format="gguf", tokenizer=tokenizer)

    text = austen_texts()[1][:600]
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"][:48]
    with torch.no_grad():
        ours = packed.generate(torch.tensor([prompt]), max_new_tokens=NEW_TOKENS, do_sample=False)[
            0, len(prompt) :
        ]

    sequence = prompt + ours.tolist()
    with torch.no_grad():
        our_next = packed(torch.tensor([sequence])).logits[0].argmax(-1)
    llm = llama_cpp.Llama(str(gguf_file), n_ctx=256, n_threads=2, logits_all=True, verbose=False)
    try:
        # the tokenizer travelled: llama.cpp cuts the text as transformers does, and knows the chat template
        assert (
            llm.tokenize(text.encode(), add_bos=False, special=True)
            == tokenizer(text, add_special_tokens=False)["input_ids"]
        )
        assert llm.metadata["tokenizer.chat_template"] == tokenizer.chat_template
        theirs = llama_greedy(llm, prompt, NEW_TOKENS)
        llm.reset()
        llm.eval(sequence)
        their_next = torch.from_numpy(llm.scores[: len(sequence)]).argmax(-1)
    finally:
        llm.close()
    # llama.cpp multiplies Q4_1 weights with 8-bit quantized activations (its CPU dot product), so its logits
    # carry that rounding and a free-running greedy text parts from ours after a few tokens (6 of 16 here on a
    # 3/4-bit RTN subnet). Greedy starts the same; next-token choices along one text agree almost everywhere.
    assert theirs[:4] == ours.tolist()[:4], (theirs, ours.tolist())
    agreement = (their_next == our_next).float().mean().item()
    assert agreement >= 0.9, agreement
