"""The real model: a 2/3/4-bit GPTQ supernet of SmolLM2-135M from 128 x 512 Austen tokens (slow: minutes)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa import QFALinear, QFAQuantizationConfig

pytestmark = pytest.mark.slow

EVAL_TOKENS = 2048


def test_smollm2_gptq_supernet_builds_and_its_subnets_order_by_bits():
    from peft_qfa.testing import austen_texts, perplexity, smollm2_path

    path = smollm2_path()
    train_texts, heldout = austen_texts()
    tokenizer = AutoTokenizer.from_pretrained(path)
    fp = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    fp_ppl = perplexity(fp, tokenizer, heldout, seq_len=512, max_tokens=EVAL_TOKENS)
    fp_linears = {n for n, m in fp.named_modules() if isinstance(m, nn.Linear)}
    del fp

    config = QFAQuantizationConfig(bits=(2, 3, 4), group_size=64, method="gptq", calibration=train_texts)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=config, dtype=torch.float32)

    assert model.config.quantization_config.calibration_tokens == 128 * 512
    layers = {n for n, m in model.named_modules() if isinstance(m, QFALinear)}
    assert layers == fp_linears - {"lm_head"} and len(layers) == 30 * 7
    assert not any(isinstance(m, nn.Linear) for n, m in model.named_modules() if n != "lm_head")

    space = peft_qfa.search_space(model)
    ppl = {}
    for bits in (2, 3, 4):
        peft_qfa.set_subnet(model, space.uniform(bits))
        ppl[bits] = perplexity(model, tokenizer, heldout, seq_len=512, max_tokens=EVAL_TOKENS)
    assert ppl[4] < ppl[3] < ppl[2]
    assert ppl[4] < 1.5 * fp_ppl, (fp_ppl, ppl)  # a broken build lands far above this
