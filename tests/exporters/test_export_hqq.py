"""HQQ export: a subprocess that never imports peft_qfa loads the folder with transformers + hqq and must
give our logits (within float rounding) and the same 32-token greedy generation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import peft_qfa

pytest.importorskip(
    "hqq", reason="the HQQ export test needs the hqq package (pip install 'peft-qfa[export]')"
)

PROMPT = torch.arange(3, 19)[None]
NEW_TOKENS = 32

# The documented loader (docs/export.md): stock transformers builds the model, hqq's HQQLinear reads each
# quantized layer's state. transformers 5.x's HQQ quantizer no longer loads pre-quantized checkpoints itself.
STOCK_LOAD = """
import sys, torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM
from hqq.core.quantize import HQQLinear

folder, out = sys.argv[1], sys.argv[2]
config = AutoConfig.from_pretrained(folder)
del config.quantization_config
model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
state = load_file(f"{folder}/model.safetensors")
for name in sorted({key.rsplit(".", 1)[0] for key in state if key.endswith(".W_q")}):
    layer = HQQLinear(None, None, compute_dtype=torch.float32, device="cpu", initialize=False)
    layer.load_state_dict({k[len(name) + 1:]: state.pop(k) for k in list(state) if k.startswith(name + ".")})
    model.set_submodule(name, layer)
model.load_state_dict(state, strict=False)
model.tie_weights()
model.eval()
ids = torch.arange(3, 19)[None]
with torch.no_grad():
    logits = model(ids).logits
    tokens = model.generate(ids, max_new_tokens=32, do_sample=False, pad_token_id=0)
bits = sorted({int(m.meta["nbits"]) for m in model.modules() if isinstance(m, HQQLinear)})
assert "peft_qfa" not in sys.modules, "the stock load imported peft_qfa"
torch.save({"logits": logits, "tokens": tokens, "bits": bits}, out)
"""


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_hqq_export_loads_without_peft_qfa_and_matches(materialized, materialized_dirs, tmp_path, family):
    model = materialized(family)
    folder = peft_qfa.export(model, tmp_path / "hqq", format="hqq")
    with torch.no_grad():
        expected_logits = model(PROMPT).logits
        expected_tokens = model.generate(PROMPT, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)

    out = tmp_path / "stock.pt"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": "",
    }  # a clean environment; the script asserts it never imported peft_qfa
    result = subprocess.run(
        [sys.executable, "-c", STOCK_LOAD, str(folder), str(out)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    got = torch.load(out)
    assert got["bits"] == [2, 3, 4]
    torch.testing.assert_close(got["logits"], expected_logits, rtol=0, atol=1e-5)
    assert torch.equal(got["tokens"], expected_tokens)


def test_hqq_config_names_the_method_and_keeps_per_layer_bits(materialized, tmp_path):
    from safetensors.torch import load_file

    folder = peft_qfa.export(materialized("llama"), tmp_path / "hqq", format="hqq")
    config = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "hqq"
    assert config["quant_config"]["self_attn.q_proj"]["weight_quant_params"]["axis"] == 1
    state = load_file(folder / "model.safetensors")
    bits = [int(state[f"model.layers.{i}.mlp.down_proj.nbits"]) for i in range(3)]
    assert bits == [4, 2, 3]
    assert not any(".b4_" in key or ".b2_" in key for key in state)  # nothing of our own layout is left


def test_hqq_export_from_a_saved_folder_carries_its_tokenizer(materialized_dirs, tmp_path):
    folder = peft_qfa.export(materialized_dirs["llama"], tmp_path / "hqq", format="hqq")
    assert (folder / "tokenizer.json").is_file()
