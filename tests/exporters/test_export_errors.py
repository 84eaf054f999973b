"""Bad input to the exporters: clear errors that name the problem and the fix, and the CLI's one-line form."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, MistralConfig, MistralForCausalLM

import peft_qfa
from peft_qfa.cli import main
from peft_qfa.testing import tiny_llama

pytest.importorskip("gguf")


def test_unknown_format_is_refused(materialized, tmp_path):
    with pytest.raises(ValueError, match=r"format must be one of \('native', 'hqq', 'gguf'\)"):
        peft_qfa.export(materialized("llama"), tmp_path / "out", format="onnx")


def test_unknown_gguf_type_and_a_gguf_output_that_is_not_a_file_are_refused(materialized, tmp_path):
    model = materialized("llama")
    with pytest.raises(ValueError, match="gguf_type must be one of"):
        peft_qfa.export(model, tmp_path / "m.gguf", format="gguf", gguf_type="Q9_X")
    with pytest.raises(ValueError, match="ending in .gguf"):
        peft_qfa.export(model, tmp_path / "folder", format="gguf")


def test_a_plain_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no QFAPackedLinear layer"):
        peft_qfa.export(tiny_llama(), tmp_path / "m.gguf", format="gguf")


def test_a_supernet_is_refused_with_the_way_to_materialize(tmp_path):
    tiny_llama().save_pretrained(tmp_path / "fp")
    supernet = AutoModelForCausalLM.from_pretrained(
        tmp_path / "fp", quantization_config=peft_qfa.QFAQuantizationConfig(group_size=32, method="rtn")
    )
    with pytest.raises(ValueError, match=r"supernet .* materialize one subnet first"):
        peft_qfa.export(supernet, tmp_path / "hqq", format="hqq")


def test_an_architecture_without_a_gguf_mapping_names_what_is_missing(tmp_path):
    from .conftest import materialized_model

    def tiny_mistral(seed=0, **overrides):
        dims = dict(
            hidden_size=64,
            intermediate_size=128,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=256,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MistralForCausalLM(MistralConfig(**{**dims, **overrides})).eval()

    model = materialized_model(tiny_mistral, tmp_path)
    with pytest.raises(
        NotImplementedError,
        match=r"model_type 'mistral' has no GGUF mapping; supported: \['llama', 'qwen2'\].*ARCHITECTURES",
    ):
        peft_qfa.export(model, tmp_path / "m.gguf", format="gguf")
    assert not (tmp_path / "m.gguf").exists()


def test_the_cli_exports_a_materialized_folder(materialized_dirs, tmp_path, capsys):
    assert (
        main(["export", str(materialized_dirs["qwen2"]), str(tmp_path / "m.gguf"), "--format", "gguf"]) == 0
    )
    assert (tmp_path / "m.gguf").is_file()
    assert main(["export", str(materialized_dirs["qwen2"]), str(tmp_path / "hqq"), "--format", "hqq"]) == 0
    assert (tmp_path / "hqq" / "model.safetensors").is_file()
    assert "bit-widths [2, 3, 4]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "gguf", "--gguf-type", "Q9"], "--gguf-type must be one of Q4_1, F16, Q2_K"),
        (["--format", "hqq", "--budget", "3"], "already a materialized subnet; drop --budget/--subnet"),
        (["--format", "native"], "already a native folder; give --format hqq or --format gguf"),
    ],
)
def test_cli_errors_are_one_line(materialized_dirs, tmp_path, capsys, extra, message):
    output = str(tmp_path / ("m.gguf" if "gguf" in extra else "out"))
    assert main(["export", str(materialized_dirs["llama"]), output, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_supernet_without_a_choice_is_refused(tmp_path, capsys):
    tiny_llama().save_pretrained(tmp_path / "fp")
    assert main(["export", str(tmp_path / "fp"), str(tmp_path / "out"), "--format", "hqq"]) == 2
    assert "one of --budget or --subnet is required" in capsys.readouterr().err


def test_the_cli_materializes_a_supernet_subnet_straight_into_gguf(tmp_path, capsys):
    from peft_qfa.testing import char_tokenizer

    tiny_llama().save_pretrained(tmp_path / "fp")
    supernet = AutoModelForCausalLM.from_pretrained(
        tmp_path / "fp", quantization_config=peft_qfa.QFAQuantizationConfig(group_size=32, method="rtn")
    )
    supernet.save_pretrained(tmp_path / "supernet")
    char_tokenizer().save_pretrained(tmp_path / "supernet")
    subnet = '{"model.layers.0": 2, "model.layers.1": 4}'
    argv = [
        "export",
        str(tmp_path / "supernet"),
        str(tmp_path / "m.gguf"),
        "--subnet",
        subnet,
        "--format",
        "gguf",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "the GGUF file carries no tokenizer: only byte-level BPE" in out  # the character tokenizer
    assert "bit-widths [2, 4] as gguf (Q4_1)" in out
    assert (tmp_path / "m.gguf").is_file() and not (tmp_path / "supernet" / "m.gguf").exists()
