"""Windows start the way the model expects: with BOS exactly when the tokenizer adds one (or when told to)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaModel

from peft_qfa.checkpoint import SEARCH_DATA_NAME
from peft_qfa.cli import build_parser
from peft_qfa.search.evaluators import LossEvaluator, MultipleChoiceEvaluator
from peft_qfa.supernet.calibration import calibration_tokens
from peft_qfa.testing import char_tokenizer, perplexity, single_torch_thread, tiny_llama
from peft_qfa.train.recipe import resolve_options, token_blocks, train_supernet
from peft_qfa.windows import cut_windows, window_bos

BOS = 1
TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune.\n" * 12


@pytest.fixture(scope="module")
def bos_tokenizer():
    return char_tokenizer(add_bos=True)


@pytest.fixture(autouse=True)
def one_thread():
    with single_torch_thread():
        yield


def test_window_bos_follows_the_tokenizer_and_can_be_overridden(bos_tokenizer):
    assert bos_tokenizer("ab")["input_ids"][0] == BOS
    assert window_bos(bos_tokenizer) == BOS and window_bos(bos_tokenizer, add_bos=False) is None
    plain = char_tokenizer()
    assert window_bos(plain) is None and window_bos(plain, add_bos=True) == BOS
    assert window_bos(None) is None
    with pytest.raises(ValueError, match="add_bos=True needs a tokenizer"):
        window_bos(None, add_bos=True)
    with pytest.raises(TypeError, match="add_bos must be True, False or None"):
        window_bos(plain, add_bos="yes")


def test_cut_windows_puts_bos_first_and_keeps_every_text_token_once():
    stream = torch.arange(10, 33)
    windows = cut_windows(stream, 8, BOS, keep_tail=True)
    assert all(int(w[0]) == BOS for w in windows) and [w.numel() for w in windows] == [8, 8, 8, 3]
    assert torch.equal(torch.cat([w[1:] for w in windows]), stream)
    assert [w.numel() for w in cut_windows(stream, 8, None)] == [8, 8]


def test_training_blocks_start_with_bos(bos_tokenizer):
    data = Dataset.from_dict({"text": [TEXT, TEXT[:200]]})
    blocks = token_blocks(data, bos_tokenizer, 16)
    rows = blocks["input_ids"]
    assert all(row[0] == BOS and len(row) == 16 for row in rows)
    stream = bos_tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert [t for row in rows for t in row[1:]][:100] == stream[:100]
    assert all(row[0] != BOS for row in token_blocks(data, bos_tokenizer, 16, add_bos=False)["input_ids"])
    assert all(row[0] == BOS for row in token_blocks(data, char_tokenizer(), 16, add_bos=True)["input_ids"])


def test_evaluation_windows_start_with_bos(bos_tokenizer):
    evaluator = LossEvaluator(TEXT, bos_tokenizer, seq_len=32, batch_size=4)
    assert all(bool((batch[:, 0] == BOS).all()) for batch in evaluator.batches)
    assert all(bool((batch[:, 0] != BOS).all()) for batch in LossEvaluator(TEXT, char_tokenizer(), seq_len=32).batches)
    task = {"examples": [{"input": "Is it?", "target_scores": {"yes": 1, "no": 0}}]}
    rows = MultipleChoiceEvaluator(task, bos_tokenizer).rows
    assert all(ids[0] == BOS for ids, _ in rows) and rows[0][1] == 1 + len("Is it?")


def test_perplexity_windows_start_with_bos(bos_tokenizer):
    model = tiny_llama(seed=0).eval()
    seen = []
    model.register_forward_pre_hook(lambda _m, _a, kwargs: seen.append(kwargs["input_ids"]), with_kwargs=True)
    with_bos = perplexity(model, bos_tokenizer, TEXT, seq_len=64, max_tokens=300)
    assert seen and all(bool((ids[:, 0] == BOS).all()) for ids in seen)
    seen.clear()
    without = perplexity(model, bos_tokenizer, TEXT, seq_len=64, max_tokens=300, add_bos=False)
    assert all(bool((ids[:, 0] != BOS).all()) for ids in seen) and with_bos != without


def test_calibration_windows_from_texts_start_with_bos(bos_tokenizer):
    windows = calibration_tokens([TEXT], seq_len=32, n_samples=4, tokenizer=bos_tokenizer)
    assert windows.shape == (4, 32) and bool((windows[:, 0] == BOS).all())
    plain = calibration_tokens([TEXT], seq_len=32, n_samples=4, tokenizer=bos_tokenizer, add_bos=False)
    assert bool((plain[:, 0] != BOS).all())


@pytest.mark.parametrize("add_bos", ["auto", "false"])
def test_train_command_trains_and_saves_search_windows_with_bos(tmp_path, monkeypatch, bos_tokenizer, add_bos):
    model_dir = tmp_path / "model"
    tiny_llama(seed=0).save_pretrained(model_dir)
    bos_tokenizer.save_pretrained(model_dir)
    assert window_bos(AutoTokenizer.from_pretrained(model_dir)) == BOS  # the default survives a save
    data = tmp_path / "novel.txt"
    data.write_text(TEXT * 4, encoding="utf-8")
    seen = []
    argv = [
        "train", "--model", str(model_dir), "--data", str(data), "--output", str(tmp_path / "out"), "--method", "gptq",
        "--calibration-samples", "4", "--group-size", "32", "--r", "2", "--steps", "2", "--batch-size", "2",
        "--seq-len", "16", "--search-tokens", "32", "--distill", "none", "--add-bos", add_bos,
    ]
    original = LlamaModel.forward

    def recording_forward(self, input_ids=None, *args, **kwargs):
        seen.append(input_ids)
        return original(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(LlamaModel, "forward", recording_forward)
    train_supernet(resolve_options(build_parser().parse_args(argv)))
    search = load_file(tmp_path / "out" / SEARCH_DATA_NAME)["input_ids"]
    first = [int(ids[0, 0]) for ids in seen if ids is not None]
    if add_bos == "auto":
        assert first and set(first) == {BOS}  # calibration and training windows
        assert search.dim() == 2 and bool((search[:, 0] == BOS).all())
    else:
        assert BOS not in first and search.dim() == 1
