"""``peft-qfa train``: options from flags and a JSON file, data loading, and a full tiny run."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa import QFAQuantizationConfig
from peft_qfa.checkpoint import SEARCH_DATA_NAME
from peft_qfa.cli import COMMANDS, build_parser, main
from peft_qfa.supernet.layer import find_bit_layers
from peft_qfa.train import distillation
from peft_qfa.train.recipe import (
    SUMMARY_FILE,
    hold_back_search_blocks,
    load_texts,
    resolve_options,
    token_blocks,
    train_supernet,
)

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune,\nmust be in want of a wife.\n"


@pytest.fixture
def text_files(tmp_path):
    files = []
    for i in range(2):
        path = tmp_path / f"novel{i}.txt"
        path.write_text(TEXT * (20 + i), encoding="utf-8")
        files.append(str(path))
    return files


def parse(*argv):
    return build_parser().parse_args(["train", *argv])


def test_every_command_module_registers_itself():
    assert "train" in COMMANDS
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0


def test_a_config_file_gives_options_and_flags_override_it(tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": "m", "data": ["a.txt"], "output": "o", "bits": [2, 4], "group-size": 32,
                                  "steps": 50, "lr": 0.001}))
    options = resolve_options(parse("--config", str(config), "--steps", "7", "--bits", "3,4"))
    assert options["steps"] == 7 and options["bits"] == (3, 4)  # flags win
    assert options["group_size"] == 32 and options["lr"] == 0.001 and options["data"] == ["a.txt"]  # from the file
    assert options["schedule"] == "resource-balanced" and options["period"] is None  # defaults


def test_bad_options_are_named(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"peft-qfa train: --model, --output must be given"):
        resolve_options(parse("--data", "a.txt"))
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": "m", "learning_rate": 1}))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['learning_rate'\] in .*run.json; known options: \["):
        resolve_options(parse("--config", str(config)))
    with pytest.raises(ValueError, match="`--schedule fixed` needs `--fixed-bits`"):
        resolve_options(parse("--model", "m", "--data", "a", "--output", "o", "--schedule", "fixed"))
    with pytest.raises(ValueError, match="--steps must be positive, got 0"):
        resolve_options(parse("--model", "m", "--data", "a", "--output", "o", "--steps", "0"))
    assert main(["train", "--data", "a.txt"]) == 2
    assert "--model, --output must be given" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse lists the known schedules
        parse("--schedule", "balanced")
    error = capsys.readouterr().err
    assert "invalid choice: 'balanced'" in error and all(name in error for name in ("resource-balanced", "sandwich"))


def test_text_and_json_data_become_token_blocks(tmp_path, text_files, tiny_model_with_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_with_tokenizer_dir)
    texts = load_texts(text_files)
    assert len(texts) == 2 and texts[0]["text"].count("\n") == 40  # one row per file, line breaks kept
    blocks = token_blocks(texts, tokenizer, seq_len=16)
    n_tokens = sum(len(t) + 1 for t in texts["text"])  # one character per token, plus an EOS per file
    assert len(blocks) == n_tokens // 16
    assert blocks[0]["input_ids"] == blocks[0]["labels"] and len(blocks[0]["input_ids"]) == 16

    records = tmp_path / "records.jsonl"
    records.write_text("\n".join(json.dumps({"body": TEXT, "id": i}) for i in range(3)))
    assert load_texts([str(records)], text_column="body")["body"] == [TEXT] * 3
    with pytest.raises(ValueError, match=r"the data has no column 'text'; its columns are \['body', 'id'\]"):
        load_texts([str(records)])
    with pytest.raises(ValueError, match="--data mixes local files with names that are not files"):
        load_texts([str(records), "no/such/file.txt"])
    with pytest.raises(ValueError, match="must be all text .* or all JSON"):
        load_texts([str(records), text_files[0]])
    with pytest.raises(ValueError, match="less than one --seq-len=100000 block"):
        token_blocks(texts, tokenizer, seq_len=100_000)


def test_train_command_trains_saves_and_reports(tmp_path, text_files, tiny_model_with_tokenizer_dir, capsys):
    output = tmp_path / "supernet"
    argv = [
        "--model", tiny_model_with_tokenizer_dir, "--data", *text_files, "--output", str(output),
        "--method", "gptq", "--calibration-samples", "4", "--group-size", "32", "--r", "2", "--lora-alpha", "4",
        "--steps", "4", "--batch-size", "2", "--seq-len", "16", "--lr", "0.01", "--logging-steps", "2",
        "--schedule", "sandwich", "--seed", "1",
    ]
    trainer, _ = train_supernet(resolve_options(parse(*argv)))  # what `peft-qfa train ARGV` runs
    printed = capsys.readouterr().out
    assert "Optimizer steps per bit-width and group (sandwich schedule):" in printed
    assert "model.layers.0" in printed and "4-bit" in printed
    assert [e["step"] for e in trainer.state.log_history if "qfa/avg_bits" in e] == [2, 4]
    # right after the flow callback, so report_to integrations (called before user callbacks) see qfa/avg_bits
    names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
    assert names[:2] == ["DefaultFlowCallback", "QFASamplerCallback"]

    summary = json.loads((output / SUMMARY_FILE).read_text())
    assert summary["steps"] == 4 and summary["sampler"] == {"name": "sandwich", "seed": 1}
    assert summary["options"]["method"] == "gptq" and summary["options"]["bits"] == [2, 3, 4]
    # sandwich over 4 steps: largest, smallest, random, largest
    for counts in summary["bit_counts"].values():
        assert counts.get("4", 0) >= 2 and counts.get("2", 0) >= 1 and sum(counts.values()) == 4
    assert (output / "tokenizer.json").is_file()
    assert not (output / "checkpoints").exists() or not any((output / "checkpoints").glob("checkpoint-*"))

    # the folder reloads as the supernet with its trained adapters
    reloaded = AutoModelForCausalLM.from_pretrained(output)
    assert peft_qfa.search_space(reloaded).fingerprint() == peft_qfa.search_space(trainer.model).fingerprint()
    trained = {n.removeprefix("base_model.model."): p for n, p in trainer.model.named_parameters() if p.requires_grad}
    loaded = {n: p for n, p in reloaded.named_parameters() if ".qfa_" in n}
    assert trained.keys() == loaded.keys()
    assert all(torch.equal(trained[n], loaded[n]) for n in trained)
    assert any(p.abs().sum() > 0 for n, p in loaded.items() if ".qfa_B." in n)  # B starts at zero: it trained

    # the tail of the data was held back from training and saved: a budget alone now deploys the folder
    n_blocks = len(token_blocks(load_texts(text_files), AutoTokenizer.from_pretrained(output), seq_len=16))
    held_back = load_file(output / SEARCH_DATA_NAME)["input_ids"]
    assert held_back.numel() == 16 * (n_blocks // 10) and summary["options"]["search_tokens"] == 2048
    assert len(trainer.train_dataset) == n_blocks - n_blocks // 10
    with pytest.warns(UserWarning, match="loading attributes"):
        deployed = AutoModelForCausalLM.from_pretrained(
            output,
            quantization_config=QFAQuantizationConfig(budget=3.0, search_options={"generations": 1, "children": 2}),
        )
    assert {type(layer).__name__ for layer in find_bit_layers(deployed).values()} == {"QFAPackedLinear"}
    assert peft_qfa.search_space(deployed).cost(peft_qfa.get_subnet(deployed)).avg_bits <= 3.0
    assert deployed.qfa_search_result.n_evaluations > 0


def test_default_rank_is_16_or_the_largest_the_model_allows(tmp_path, text_files, tiny_model_with_tokenizer_dir, capsys):
    argv = [
        "--model", tiny_model_with_tokenizer_dir, "--data", *text_files, "--method", "rtn", "--steps", "1",
        "--batch-size", "2", "--seq-len", "16",
    ]
    options = resolve_options(parse(*argv, "--output", str(tmp_path / "a"), "--group-size", "16"))
    trainer, _ = train_supernet(options)
    narrowest = min(layer.in_features for layer in find_bit_layers(trainer.model).values())
    assert narrowest // 16 < 16  # the tiny model cannot take rank 16: the default drops to what it allows
    config = trainer.model.peft_config["default"]
    assert (config.r, config.lora_alpha) == (narrowest // 16, 2.0 * (narrowest // 16))
    assert f"adapter rank r={narrowest // 16}: the largest" in capsys.readouterr().out
    summary = json.loads((tmp_path / "a" / SUMMARY_FILE).read_text())
    assert summary["options"]["r"] == narrowest // 16
    assert options["r"] is None  # the caller's options are left as given

    # an explicit rank is used as given, and a too-large one is refused with the reason
    trainer, _ = train_supernet(resolve_options(parse(*argv, "--output", str(tmp_path / "b"), "--r", "1")))
    assert (trainer.model.peft_config["default"].r, trainer.model.peft_config["default"].lora_alpha) == (1, 2.0)
    with pytest.raises(ValueError, match="larger than in_features / group_size"):
        train_supernet(resolve_options(parse(*argv, "--output", str(tmp_path / "c"), "--r", "64")))


def test_search_tokens_are_whole_blocks_from_the_end_and_at_most_a_tenth():
    from datasets import Dataset

    blocks = Dataset.from_dict({"input_ids": [[i] * 4 for i in range(30)], "labels": [[i] * 4 for i in range(30)]})
    blocks.set_format("torch")
    kept, search = hold_back_search_blocks(blocks, search_tokens=6, seq_len=4)  # 6 tokens -> 2 whole blocks
    assert len(kept) == 28 and search.tolist() == [28] * 4 + [29] * 4
    kept, search = hold_back_search_blocks(blocks, search_tokens=1000, seq_len=4)  # capped at 10%: 3 blocks
    assert len(kept) == 27 and search.numel() == 12
    kept, search = hold_back_search_blocks(blocks, search_tokens=0, seq_len=4)
    assert len(kept) == 30 and search is None
    with pytest.raises(ValueError, match="--search-tokens must be >= 0"):
        hold_back_search_blocks(blocks, search_tokens=-1, seq_len=4)


def test_train_command_resumes_from_its_checkpoints(
    tmp_path, text_files, tiny_model_with_tokenizer_dir, monkeypatch, capsys
):
    common = [
        "train", "--model", tiny_model_with_tokenizer_dir, "--data", *text_files, "--method", "rtn",
        "--group-size", "32", "--r", "2", "--batch-size", "2", "--seq-len", "16", "--lr", "0.01", "--steps", "4",
    ]
    straight, straight_callback = train_supernet(resolve_options(parse(*common[1:], "--output", str(tmp_path / "a"))))

    interrupted = [*common[1:], "--output", str(tmp_path / "b"), "--save-steps", "2"]
    with monkeypatch.context() as patch:  # an interruption after step 2, once its checkpoint is written
        patch.setattr(transformers, "Trainer", _trainer_stopping_at(2))  # --distill none
        patch.setattr(distillation, "QFADistillationTrainer", _trainer_stopping_at(2, distillation.QFADistillationTrainer))
        train_supernet(resolve_options(parse(*interrupted)))
    assert (tmp_path / "b" / "checkpoints" / "checkpoint-2").is_dir()
    (tmp_path / "b" / "checkpoints" / "checkpoint-3").mkdir()  # what a kill during the next checkpoint leaves
    capsys.readouterr()
    resumed, resumed_callback = train_supernet(resolve_options(parse(*interrupted, "--resume", "auto")))
    printed = capsys.readouterr().out
    assert "skipped checkpoint-3: no trainer_state.json" in printed
    assert f"resuming from {tmp_path / 'b' / 'checkpoints' / 'checkpoint-2'}" in printed

    assert resumed.state.global_step == 4
    assert resumed_callback.bit_counts == straight_callback.bit_counts
    ours = dict(resumed.model.named_parameters())
    trained = [(n, p) for n, p in straight.model.named_parameters() if p.requires_grad]
    assert trained and all(torch.equal(p, ours[n]) for n, p in trained)
    with pytest.raises(FileNotFoundError, match="--resume auto: .* does not exist"):
        train_supernet(resolve_options(parse(*common[1:], "--output", str(tmp_path / "c"), "--resume", "auto")))


def _trainer_stopping_at(step, base=transformers.Trainer):
    class StopAt(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                control.should_training_stop = True

    class StoppingTrainer(base):
        def __init__(self, *args, callbacks=None, **kwargs):
            super().__init__(*args, callbacks=[*(callbacks or []), StopAt()], **kwargs)

    return StoppingTrainer


def test_distillation_is_the_default_objective_and_its_flags_are_checked():
    options = resolve_options(parse("--model", "m", "--data", "a", "--output", "o"))
    assert options["distill"] == "float" and options["distill_weight"] == 1.0 and options["clip_search"] is False
    options = resolve_options(parse("--model", "m", "--data", "a", "--output", "o", "--clip-search"))
    assert options["clip_search"] is True
    with pytest.raises(ValueError, match=r"peft-qfa train: --distill-weight must lie in \[0, 1\]"):
        resolve_options(parse("--model", "m", "--data", "a", "--output", "o", "--distill-weight", "2"))
    with pytest.raises(ValueError, match=r"--clip-search='maybe' is not valid: expected true or false, got 'maybe'\.$"):
        resolve_options(parse("--model", "m", "--data", "a", "--output", "o", "--clip-search", "maybe"))


@pytest.mark.parametrize(
    "flags, trainer_name",
    [(["--distill", "cached", "--distill-top-k", "4", "--distill-weight", "0.5"], "QFADistillationTrainer"),
     (["--distill", "subnet", "--distill-temperature", "2"], "QFADistillationTrainer"),
     (["--distill", "float", "--teacher-dtype", "bfloat16", "--clip-search"], "QFADistillationTrainer"),
     (["--distill", "none", "--clip-search"], "Trainer"),
     (["--distill", "none", "--train-bits", "2,4", "--warmup-steps", "1"], "Trainer")],
)
def test_train_command_runs_every_objective(tmp_path, text_files, tiny_model_with_tokenizer_dir, flags, trainer_name):
    argv = [
        "--model", tiny_model_with_tokenizer_dir, "--data", *text_files, "--output", str(tmp_path / "out"),
        "--method", "rtn", "--group-size", "32", "--r", "2", "--steps", "3", "--batch-size", "2", "--seq-len", "16",
        "--lr", "0.01", *flags,
    ]
    trainer, _ = train_supernet(resolve_options(parse(*argv)))
    assert type(trainer).__name__ == trainer_name and trainer.state.global_step == 3
    trained = [p for n, p in trainer.model.named_parameters() if p.requires_grad and ".qfa_B." in n]
    assert any(p.abs().sum() > 0 for p in trained)
    summary = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert summary["options"]["distill"] == flags[1]
    built = trainer.model.base_model.model.config.quantization_config
    built = built if isinstance(built, dict) else built.to_dict()
    # RTN's clipping search scores each group's output error, so it calibrates on the training blocks
    assert built.get("clip_search", False) == ("--clip-search" in flags)
    assert ("calibration_tokens" in built) == ("--clip-search" in flags)
    if "--train-bits" in flags:  # the first step leaves out 2 bits, then only 2 and 4 are drawn
        assert summary["sampler"]["train_bits"] == [2, 4] and summary["sampler"]["warmup_bits"] == [4]
        assert all(set(counts) <= {"2", "4"} and counts["4"] >= 1 for counts in summary["bit_counts"].values())


def test_candidate_bits_flags_reach_the_sampler_and_bad_ones_are_named():
    from peft_qfa.train.checks import check_values

    base = ("--model", "m", "--data", "a", "--output", "o", "--steps", "100")
    options = resolve_options(parse(*base, "--train-bits", "3,4", "--warmup-steps", "10"))
    assert options["train_bits"] == (3, 4) and options["warmup_steps"] == 10
    check_values(options)
    defaults = resolve_options(parse(*base))
    assert defaults["train_bits"] is None and defaults["warmup_steps"] == 0
    for flags, message in [
        (("--train-bits", "5"), r"--train-bits=5 must be a non-empty subset of --bits=2,3,4"),
        (("--train-bits", "4", "--warmup-steps", "3"), "needs at least two of them"),
        (("--warmup-steps", "100"), "--warmup-steps=100 must be fewer than --steps=100"),
        (("--schedule", "fixed", "--fixed-bits", "2", "--train-bits", "3,4"), "--fixed-bits=2 is not one of --train-bits=3,4"),
        (("--warmup-steps", "-1"), "--warmup-steps"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_values(resolve_options(parse(*base, *flags)))
