"""GGUF export: read back with the gguf package, every tensor dequantized equals our weights up to fp16."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import peft_qfa
from peft_qfa.exporters.gguf import rope_rows
from peft_qfa.exporters.gguf_q4_1 import q4_1_line
from peft_qfa.exporters.source import PackedTensors, packed_layers

gguf = pytest.importorskip(
    "gguf", reason="the GGUF export needs the gguf package (pip install 'peft-qfa[export]')"
)

HEADS = {"q_proj": "num_attention_heads", "k_proj": "num_key_value_heads"}


def read_back(path) -> dict[str, np.ndarray]:
    reader = gguf.GGUFReader(path)
    return {
        t.name: (gguf.quants.dequantize(t.data, t.tensor_type), t.tensor_type.name) for t in reader.tensors
    }


def _expected_packed(
    model, name: str, packed: PackedTensors, permute: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(d16 * q + m16 exactly, our float weight), rows in llama.cpp's order."""
    d, m = q4_1_line(packed)
    groups = packed.codes.float().unflatten(1, (-1, packed.group_size))
    stored = (d.float()[..., None] * groups + m.float()[..., None]).flatten(1)
    ours = packed.dequantize()
    leaf = name.rsplit(".", 1)[-1]
    if permute and leaf in HEADS:
        order = rope_rows(getattr(model.config, HEADS[leaf]), ours.shape[0])
        stored, ours = stored[order], ours[order]
    return stored, ours


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_gguf_read_back_equals_our_weights_within_fp16(materialized, tmp_path, family):
    model = materialized(family)
    path = peft_qfa.export(model, tmp_path / "model.gguf", format="gguf")
    tensors = read_back(path)
    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, family.upper()), model.config.num_hidden_layers)
    layers = packed_layers(model)
    assert len(layers) == 21
    for name, layer in layers.items():
        packed = PackedTensors.of(layer)
        got, kind = tensors.pop(names.get_name(name + ".weight", (".weight",)))
        assert kind == "Q4_1"
        stored, ours = _expected_packed(model, name, packed, permute=family == "llama")
        np.testing.assert_array_equal(got, stored.numpy())  # bit for bit the line d*q + m the block holds
        # ... which is our weight up to the fp16 rounding of d and m: |q * err(d)| + |err(m)|
        bound = 15 * packed.scales.abs().max() * 2**-11 + (packed.scales * packed.zeros).abs().max() * 2**-11
        assert (torch.from_numpy(got) - ours).abs().max() <= bound
        if packed.bias is not None:
            bias, _ = tensors.pop(names.get_name(name + ".bias", (".bias",)))
            np.testing.assert_array_equal(bias, packed.bias.numpy())
    for key, tensor in model.state_dict().items():
        if key.rsplit(".", 1)[0] in layers:
            continue
        got, kind = tensors.pop(names.get_name(key, (".weight", ".bias")))
        assert kind == ("F16" if tensor.dim() == 2 else "F32")
        np.testing.assert_array_equal(
            got, tensor.to(torch.float16 if tensor.dim() == 2 else torch.float32).float().numpy()
        )
    assert not tensors, f"tensors the model does not have: {sorted(tensors)}"


def test_rope_rows_turn_rotate_half_into_interleaved_pairs():
    """The same rotation, applied in transformers' layout and in llama.cpp's, agrees after the row order."""
    heads, head_dim, theta = 2, 8, 10000.0
    q = torch.randn(heads * head_dim)
    angles = 3.0 / theta ** (torch.arange(head_dim // 2) * 2 / head_dim)
    cos, sin = angles.cos(), angles.sin()
    half = q.view(heads, 2, head_dim // 2)  # transformers: dim i pairs with i + d/2
    hf = torch.stack([half[:, 0] * cos - half[:, 1] * sin, half[:, 1] * cos + half[:, 0] * sin], 1).flatten()
    pairs = q[rope_rows(heads, q.numel())].view(heads, head_dim // 2, 2)  # llama.cpp: dims 2i and 2i+1
    cpp = torch.stack(
        [pairs[..., 0] * cos - pairs[..., 1] * sin, pairs[..., 1] * cos + pairs[..., 0] * sin], -1
    )
    torch.testing.assert_close(cpp.flatten(), hf[rope_rows(heads, q.numel())])


def test_gguf_metadata_and_tokenizer(materialized, tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=special)  # seen bytes only: fits 256 rows
    backend.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    tokenizer.chat_template = "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}"

    model = materialized("llama")
    path = peft_qfa.export(model, tmp_path / "model.gguf", format="gguf", tokenizer=tokenizer)
    fields = gguf.GGUFReader(path).fields
    value = lambda key: fields[key].contents()  # noqa: E731
    assert value("general.architecture") == "llama"
    assert value("llama.block_count") == 3
    assert value("llama.attention.head_count_kv") == model.config.num_key_value_heads
    assert value("general.file_type") == gguf.LlamaFileType.MOSTLY_Q4_1
    tokens = value("tokenizer.ggml.tokens")
    assert len(tokens) == model.config.vocab_size  # padded to the embedding rows
    vocab = tokenizer.get_vocab()
    assert all(tokens[i] == t for t, i in vocab.items())
    types = value("tokenizer.ggml.token_type")
    assert types[vocab["<|im_start|>"]] == gguf.TokenType.CONTROL
    assert types[len(vocab)] == gguf.TokenType.UNUSED
    assert value("tokenizer.ggml.model") == "gpt2"
    assert len(value("tokenizer.ggml.merges")) > 0
    assert value("tokenizer.ggml.bos_token_id") == vocab["<|im_start|>"]
    assert value("tokenizer.ggml.eos_token_id") == vocab["<|im_end|>"]
    assert value("tokenizer.chat_template") == tokenizer.chat_template


def test_gguf_f16_type_stores_the_dequantized_weights(materialized, tmp_path):
    model = materialized("qwen2")
    path = peft_qfa.export(model, tmp_path / "model.gguf", format="gguf", gguf_type="F16")
    got, kind = read_back(path)["blk.1.ffn_down.weight"]
    assert kind == "F16"
    ours = PackedTensors.of(model.get_submodule("model.layers.1.mlp.down_proj")).dequantize()
    np.testing.assert_array_equal(got, ours.half().float().numpy())


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_transformers_own_gguf_reader_loads_the_export_with_our_logits(materialized, tmp_path, family):
    """A second, independent reader (transformers' GGUF loader, which undoes llama.cpp's q/k row order itself)
    rebuilds the model from the file: names, hyperparameters and row order all have to be right."""
    from transformers import AutoModelForCausalLM

    model = materialized(family)
    path = peft_qfa.export(model, tmp_path / "model.gguf", format="gguf")
    reread = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32).eval()
    ids = torch.arange(3, 35)[None]
    with torch.no_grad():
        ours, theirs = model(ids).logits, reread(ids).logits
    # fp16 embeddings and fp16 d/m: logits of size ~0.6 move by ~1e-3 at most, a wrong row order by ~0.5
    torch.testing.assert_close(theirs, ours, rtol=0, atol=2e-3)
