"""Calibration data: texts, datasets and token tensors, and the errors for bad data."""

from __future__ import annotations

import random
import string

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from peft_qfa import QFALinear, QFAQuantizationConfig
from peft_qfa.supernet.calibration import calibration_tokens

SEQ, SAMPLES = 32, 6


def random_text(seed: int, n_chars: int) -> str:
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 8))) for _ in range(n_chars // 4)]
    return " ".join(words)[:n_chars]


TEXTS = [random_text(0, 150), random_text(1, 120)]


def build(folder, calibration, **config):
    config = dict(calibration=calibration, calibration_seq_len=SEQ, calibration_samples=SAMPLES, **config)
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=QFAQuantizationConfig(**config))


def packed_state(model):
    return {
        name: torch.cat([layer.b2_packed.flatten(), layer.b4_packed.flatten()])
        for name, layer in model.named_modules()
        if isinstance(layer, QFALinear)
    }


def expected_windows(tokenizer, texts):
    """What the docs promise: texts joined by EOS, cut into SAMPLES evenly spread windows of SEQ tokens."""
    stream = []
    for i, text in enumerate(texts):
        stream += ([tokenizer.eos_token_id] if i else []) + tokenizer(text, add_special_tokens=False)[
            "input_ids"
        ]
    step = (len(stream) - SEQ) / (SAMPLES - 1)
    return torch.tensor([stream[int(i * step) : int(i * step) + SEQ] for i in range(SAMPLES)])


def test_strings_use_the_tokenizer_saved_beside_the_model(llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    windows = expected_windows(tokenizer, TEXTS)
    assert torch.equal(
        calibration_tokens(TEXTS, seq_len=SEQ, n_samples=SAMPLES, model_path=llama_dir), windows
    )
    from_text = build(llama_dir, TEXTS)
    from_ids = build(llama_dir, windows)
    assert from_text.config.quantization_config.calibration_tokens == SAMPLES * SEQ
    got, want = packed_state(from_text), packed_state(from_ids)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


def test_dataset_text_column_and_token_column(llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    windows = expected_windows(tokenizer, TEXTS)
    text_ds = datasets.Dataset.from_dict({"text": TEXTS, "id": [0, 1]})
    assert torch.equal(
        calibration_tokens(text_ds, seq_len=SEQ, n_samples=SAMPLES, model_path=llama_dir), windows
    )
    only_column = datasets.Dataset.from_dict({"body": TEXTS})
    assert torch.equal(
        calibration_tokens(only_column, seq_len=SEQ, n_samples=SAMPLES, tokenizer=tokenizer), windows
    )
    ids_ds = datasets.Dataset.from_dict({"input_ids": [list(range(3, 3 + 40)), list(range(50, 90))]})
    ids = calibration_tokens(ids_ds, seq_len=SEQ, n_samples=2)
    assert ids.shape == (2, SEQ) and ids[0, 0] == 3 and ids[1, -1] == 89

    model = build(llama_dir, text_ds)
    got, want = packed_state(model), packed_state(build(llama_dir, windows))
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_token_tensor_is_used_as_given_and_stream_is_windowed(calib_tokens):
    assert torch.equal(calibration_tokens(calib_tokens, seq_len=7, n_samples=1), calib_tokens)
    stream = torch.arange(100)
    windows = calibration_tokens(stream, seq_len=10, n_samples=4)
    assert windows.tolist() == [list(range(s, s + 10)) for s in (0, 30, 60, 90)]


def test_explicit_tokenizer_when_the_folder_has_none(tmp_path, llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    bare = AutoModelForCausalLM.from_pretrained(llama_dir)
    bare.save_pretrained(tmp_path)  # weights and config only, no tokenizer files
    with pytest.raises(ValueError, match="could not load a tokenizer from"):
        build(str(tmp_path), TEXTS)
    model = build(str(tmp_path), TEXTS, tokenizer=tokenizer)
    assert "calibration" not in model.config.to_dict()["quantization_config"]


def test_text_shorter_than_one_window_is_a_clear_error(llama_dir):
    with pytest.raises(
        ValueError, match=r"it has 11 tokens, but one calibration window needs calibration_seq_len=32"
    ):
        build(llama_dir, "hello world")


def test_fewer_windows_than_samples_warns(llama_dir):
    with pytest.warns(
        UserWarning, match=r"give only 2 windows of 32 tokens, fewer than calibration_samples=6"
    ):
        ids = calibration_tokens(random_text(3, 70), seq_len=SEQ, n_samples=SAMPLES, model_path=llama_dir)
    assert ids.shape == (2, SEQ)


def test_bad_calibration_inputs(llama_dir):
    with pytest.raises(TypeError, match="`calibration` must be a string, a list of strings"):
        QFAQuantizationConfig(calibration=torch.randn(4, 8))
    with pytest.raises(TypeError, match="`calibration` must be a string"):
        QFAQuantizationConfig(calibration=[1, 2, 3])
    with pytest.raises(ValueError, match="cannot tell which column"):
        calibration_tokens(datasets.Dataset.from_dict({"a": ["x"], "b": ["y"]}), seq_len=4, n_samples=1)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 256\) for this model, got \[0, 999\]"):
        build(llama_dir, torch.tensor([[0, 999] * 8]))
