"""A table of bad inputs across the Python API, saved files and the CLI, and how to judge each outcome.

Used by ``tests/test_bad_inputs.py`` (one test per case) and by ``benchmarks/bad_inputs.py`` (the
count table). A case runs against tiny saved models (:func:`build_fixtures`) and is judged:

* ``clear``: an error (API) or exit status 2 with one stderr line (CLI) that contains the case's
  ``names`` text (the argument, flag or field), and nothing was written or changed;
* ``unclear``: an error that does not name it; ``traceback``: a CLI exception that escaped;
* ``multi-line``: a CLI error of more than one line or another exit status;
* ``late``: a clear CLI error, but only after the model was loaded (``after_load`` cases excepted);
* ``silent``: no error at all; ``wrote``: an error, but files were written or changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

GROUP_SIZE = 32
PROGRESS = re.compile(r"\[\d\d:\d\d")  # a tqdm progress bar's elapsed-time field


@dataclass(frozen=True)
class Case:
    name: str
    surface: str  # "api", "files" or "cli"
    run: Callable[[dict], object]  # returns an ``Outcome`` (cli) or raises (api/files)
    names: str  # the text a clear message contains (the argument, flag or field)
    after_load: bool = False  # a CLI case that can only be judged once the model is loaded


@dataclass
class Outcome:
    rc: int | None
    message: str


# ---------------------------------------------------------------------------------------------- fixtures


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_fixtures(root: Path) -> dict:
    """Tiny saved models: full precision, a supernet with adapters, a materialized subnet, GPT-2, BERT, ViT."""
    from peft import get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        BertConfig,
        BertForMaskedLM,
        GPT2Config,
        GPT2LMHeadModel,
        ViTConfig,
        ViTForImageClassification,
    )

    import peft_qfa
    from peft_qfa import QFAConfig, QFAQuantizationConfig
    from peft_qfa.testing import char_tokenizer, tiny_llama, tiny_token_batches

    root = Path(root)
    fx = {"root": root}
    fx["fp"] = root / "fp"
    tiny_llama(seed=0).save_pretrained(fx["fp"])
    char_tokenizer().save_pretrained(fx["fp"])
    fx["fp_other"] = root / "fp_other"
    tiny_llama(seed=1).save_pretrained(fx["fp_other"])

    def supernet(path):
        return AutoModelForCausalLM.from_pretrained(path, quantization_config=QFAQuantizationConfig(
            group_size=GROUP_SIZE, method="rtn"))

    torch.manual_seed(0)
    model = get_peft_model(supernet(fx["fp"]), QFAConfig(r=2, lora_alpha=4, init_weights=False))
    fx["supernet"] = root / "supernet"
    peft_qfa.save_supernet(model, fx["supernet"], search_data=tiny_token_batches(2, 24, seed=3))
    char_tokenizer().save_pretrained(fx["supernet"])
    fx["bare_supernet"] = root / "bare_supernet"  # no adapters, no search data
    supernet(fx["fp"]).save_pretrained(fx["bare_supernet"])
    char_tokenizer().save_pretrained(fx["bare_supernet"])
    fx["other_supernet"] = root / "other_supernet"  # same shapes, other weights
    supernet(fx["fp_other"]).save_pretrained(fx["other_supernet"])
    fx["materialized"] = root / "materialized"
    peft_qfa.materialize(model, {"model.layers.0": 4, "model.layers.1": 2}).save_pretrained(fx["materialized"])

    small = {"vocab_size": 256, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    fx["gpt2"] = root / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=256, n_embd=64, n_layer=1, n_head=2, n_positions=64)).save_pretrained(
        fx["gpt2"])
    fx["bert"] = root / "bert"
    BertForMaskedLM(BertConfig(hidden_size=64, **small)).save_pretrained(fx["bert"])
    fx["vit"] = root / "vit"
    ViTForImageClassification(ViTConfig(hidden_size=64, image_size=32, patch_size=8, num_labels=3,
                                        **{k: v for k, v in small.items() if k != "vocab_size"})
                              ).save_pretrained(fx["vit"])
    fx["text"] = root / "data.txt"
    fx["text"].write_text("It is a truth universally acknowledged. " * 40)
    fx["a_file"] = root / "a_file.txt"
    fx["a_file"].write_text("not a folder")
    return fx


def copy_of(fx: dict, key: str, name: str) -> Path:
    """A fresh copy of fixture folder ``key`` (for cases that damage files)."""
    destination = fx["root"] / "copies" / name
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(fx[key], destination)
    return destination


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def fresh_out(fx: dict, name: str) -> Path:
    """A path under ``root/out`` that does not exist (what a refused command must not create)."""
    path = fx["root"] / "out" / name
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------------------- runners


def cli(*argv: str) -> Outcome:
    from peft_qfa.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exit_:
            rc = exit_.code
    return Outcome(rc, err.getvalue())


def _load(path, **kwargs):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def _qconfig(**kwargs):
    from peft_qfa import QFAQuantizationConfig

    return QFAQuantizationConfig(**kwargs)


def _qfa(**kwargs):
    from peft_qfa import QFAConfig

    return QFAConfig(**kwargs)


def _build(fx, key="fp", loader=None, **kwargs):
    kwargs.setdefault("method", "rtn")
    kwargs.setdefault("group_size", GROUP_SIZE)
    if loader is None:
        return _load(fx[key], quantization_config=_qconfig(**kwargs))
    return loader.from_pretrained(fx[key], quantization_config=_qconfig(**kwargs))


def _peft(fx, key="bare_supernet", **kwargs):
    from peft import get_peft_model

    return get_peft_model(_load(fx[key]), _qfa(**kwargs))


def _vit(fx):
    from transformers import AutoModelForImageClassification

    return _build(fx, "vit", loader=AutoModelForImageClassification)


def _save_supernet(fx, target, **kwargs):
    import peft_qfa

    return peft_qfa.save_supernet(_load(fx["supernet"]), target, **kwargs)


def _search(fx, budget, ids):
    import peft_qfa

    return peft_qfa.search_subnet(_load(fx["supernet"]), budget, ids, generations=1, children=2)


def _materialize(fx, subnet):
    import peft_qfa

    return peft_qfa.materialize(_load(fx["supernet"]), subnet)


def _set_subnet(fx, subnet):
    import peft_qfa

    return peft_qfa.set_subnet(_load(fx["bare_supernet"]), subnet)


def _from_pretrained(fx, path, budget, **kwargs):
    import peft_qfa

    return peft_qfa.from_pretrained(path, budget, **kwargs)


def _adapters_on_other(fx):
    from peft import PeftModel

    return PeftModel.from_pretrained(_load(fx["other_supernet"]), fx["supernet"])


def _damaged(fx, key, name, damage: Callable[[Path], None]):
    folder = copy_of(fx, key, name)
    damage(folder)
    return folder


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _with_layer_bits(bits: dict):
    return lambda folder: edit_json(folder / "config.json", lambda c: c["quantization_config"]["layer_bits"].update(bits))


def _with_qconfig(**fields):
    return lambda folder: edit_json(folder / "config.json", lambda c: c["quantization_config"].update(fields))


def _adapter_from(fx, other_key):
    """The supernet folder, with its adapters' fingerprint replaced by that of another supernet's adapters."""
    def damage(folder):
        edit_json(folder / "adapter_config.json", lambda c: c.update(supernet_fingerprint="0123456789abcdef"))
    return damage


def _cli_error(outcome: Outcome) -> None:
    """A CLI outcome as a file case: its one error line raised (rc 2 and one line, or ``AssertionError``)."""
    lines = [line for line in outcome.message.splitlines() if line.startswith("peft-qfa")]
    if outcome.rc != 2 or len(lines) != 1:
        raise AssertionError(f"rc {outcome.rc}: {outcome.message}")
    raise ValueError(lines[0])


def _far_ids(folder: Path) -> None:
    from safetensors.torch import save_file

    save_file({"input_ids": torch.full((2, 24), 5000, dtype=torch.long)}, folder / "qfa_search_data.safetensors")


def _json_file(fx: dict, name: str, data) -> Path:
    """A file under ``root`` holding ``data`` as JSON (``None``: text that is not JSON)."""
    path = fx["root"] / name
    path.write_text("{not json" if data is None else json.dumps(data))
    return path


def _train(fx, *extra, out="train_out"):
    base = ["train", "--model", fx["fp"], "--data", fx["text"], "--output", fresh_out(fx, out), "--method", "rtn",
            "--group-size", str(GROUP_SIZE), "--steps", "1", "--batch-size", "1", "--seq-len", "16"]
    flags = {a for a in extra if str(a).startswith("--")}
    # an explicit flag in `extra` replaces the base one (argparse keeps the last, but be explicit)
    kept, skip = [], False
    for i, arg in enumerate(base):
        if skip:
            skip = False
            continue
        if arg in flags and i + 1 < len(base):
            skip = True
            continue
        kept.append(arg)
    return cli(*kept, *extra)


# ---------------------------------------------------------------------------------------------- the cases

NAN, INF = float("nan"), float("inf")


def _api_cases() -> list[Case]:
    ids = torch.randint(0, 200, (2, 24))
    far = torch.full((2, 24), 5000)
    return [
        Case("QFAConfig lora_alpha=nan", "api", lambda fx: _qfa(lora_alpha=NAN), "lora_alpha"),
        Case("QFAConfig lora_alpha=inf", "api", lambda fx: _qfa(lora_alpha=INF), "lora_alpha"),
        Case("QFAConfig r=0", "api", lambda fx: _qfa(r=0), "`r`"),
        Case("QFAConfig lora_dropout=1.5", "api", lambda fx: _qfa(lora_dropout=1.5), "lora_dropout"),
        Case("QFAConfig bits=[5]", "api", lambda fx: _qfa(bits=[5]), "bits"),
        Case("QFAQuantizationConfig bits=(5,)", "api", lambda fx: _qconfig(bits=(5,), method="rtn"), "bits"),
        Case("QFAQuantizationConfig group_size=0", "api", lambda fx: _qconfig(group_size=0, method="rtn"), "group_size"),
        Case("QFAQuantizationConfig damp_percent=nan", "api", lambda fx: _qconfig(damp_percent=NAN, method="rtn"),
             "damp_percent"),
        Case("QFAQuantizationConfig method=awq", "api", lambda fx: _qconfig(method="awq"), "method"),
        Case("QFAQuantizationConfig granularity=row", "api", lambda fx: _qconfig(granularity="row", method="rtn"),
             "granularity"),
        Case("QFAQuantizationConfig budget=nan", "api", lambda fx: _qconfig(budget=NAN), "budget"),
        Case("QFAQuantizationConfig budget='3 apples'", "api", lambda fx: _qconfig(budget="3 apples"), "budget"),
        Case("QFAQuantizationConfig target_modules='('", "api", lambda fx: _qconfig(target_modules="(", method="rtn"),
             "target_modules"),
        Case("QFAQuantizationConfig gptq without calibration", "api", lambda fx: _qconfig(method="gptq"),
             "calibration"),
        Case("build with group_size=48", "api", lambda fx: _build(fx, group_size=48), "group_size=48"),
        Case("build with target_modules=['nope']", "api", lambda fx: _build(fx, target_modules=["nope"]),
             "target_modules"),
        Case("build on BERT", "api", lambda fx: _build(fx, "bert"), "decoder-only"),
        Case("build on ViT", "api", _vit, "decoder-only"),
        Case("build on GPT-2 (Conv1D)", "api", lambda fx: _build(fx, "gpt2"), "Conv1D"),
        Case("save_supernet to a file path", "api", lambda fx: _save_supernet(fx, fx["a_file"]), "existing file"),
        Case("save_supernet float search_data", "api",
             lambda fx: _save_supernet(fx, fresh_out(fx, "s1"), search_data=torch.rand(2, 8)), "search_data"),
        Case("from_pretrained missing path", "api",
             lambda fx: _from_pretrained(fx, fx["root"] / "missing" / "supernet", 3.0), "no such folder"),
        Case("from_pretrained budget below range", "api",
             lambda fx: _from_pretrained(fx, fx["supernet"], 1.0), "below the smallest"),
        Case("from_pretrained budget='abc'", "api", lambda fx: _from_pretrained(fx, fx["supernet"], "abc"), "budget"),
        Case("save_supernet search_data beyond the vocabulary", "api",
             lambda fx: _save_supernet(fx, fresh_out(fx, "s2"), search_data=torch.full((2, 8), 9999)), "search_data"),
        Case("from_pretrained budget list", "api", lambda fx: _from_pretrained(fx, fx["supernet"], [2.5, 3.0]),
             "budget"),
        Case("search_subnet ids beyond vocabulary", "api", lambda fx: _search(fx, 3.0, far), "vocabulary"),
        Case("search_subnet budget below range", "api", lambda fx: _search(fx, 0.5, ids), "below the smallest"),
        Case("get_peft_model r=100", "api", lambda fx: _peft(fx, r=100), "r=100"),
        Case("get_peft_model lora_alpha=nan", "api", lambda fx: _peft(fx, lora_alpha=NAN), "lora_alpha"),
        Case("materialize unknown group", "api", lambda fx: _materialize(fx, {"model.layers.9": 4}),
             "model.layers.9"),
        Case("materialize bits=5", "api", lambda fx: _materialize(fx, {"model.layers.0": 5, "model.layers.1": 4}),
             "5"),
        Case("set_subnet unknown group", "api", lambda fx: _set_subnet(fx, {"bogus": 2}), "bogus"),
        Case("adapters onto another supernet", "api", _adapters_on_other, "another supernet"),
    ]


def _file_cases() -> list[Case]:
    return [
        Case("materialized layer_bits disagree with tensors", "files",
             lambda fx: _load(_damaged(fx, "materialized", "lb", _with_layer_bits({"model.layers.0.self_attn.q_proj": 2}))),
             "layer_bits"),
        Case("supernet bits disagree with tensors", "files",
             lambda fx: _load(_damaged(fx, "bare_supernet", "bits", _with_qconfig(bits=[3, 4]))), "bits"),
        Case("supernet group_size disagrees with tensors", "files",
             lambda fx: _load(_damaged(fx, "bare_supernet", "gs", _with_qconfig(group_size=16))), "group_size"),
        Case("supernet target_modules disagree with tensors", "files",
             lambda fx: _load(_damaged(fx, "bare_supernet", "tm", _with_qconfig(target_modules=["q_proj"]))),
             "target_modules"),
        Case("materialized: a layer missing from layer_bits", "files",
             lambda fx: _load(_damaged(fx, "materialized", "lb2", lambda f: edit_json(
                 f / "config.json", lambda c: c["quantization_config"]["layer_bits"].pop("model.layers.0.mlp.up_proj")))),
             "layer_bits"),
        Case("truncated model.safetensors (peft_qfa.from_pretrained)", "files",
             lambda fx: _from_pretrained(fx, _damaged(fx, "supernet", "trunc",
                                                      lambda f: _truncate(f / "model.safetensors")), 3.0),
             "model.safetensors"),
        Case("truncated model.safetensors (from_pretrained)", "files",
             lambda fx: _load(_damaged(fx, "bare_supernet", "trunc2", lambda f: _truncate(f / "model.safetensors"))),
             "model.safetensors"),
        Case("garbage safetensors header", "files",
             lambda fx: _load(_damaged(fx, "bare_supernet", "garbage",
                                       lambda f: (f / "model.safetensors").write_bytes(b"\xff" * 64))),
             "model.safetensors"),
        Case("adapters' fingerprint of another supernet", "files",
             lambda fx: _load(_damaged(fx, "supernet", "fp", _adapter_from(fx, "other_supernet"))), "another supernet"),
        Case("config version from the future", "files",
             lambda fx: _load(_damaged(fx, "bare_supernet", "ver", _with_qconfig(version=99))), "version"),
        Case("0-byte generation_config.json", "files",
             lambda fx: _load(_damaged(fx, "bare_supernet", "gen", lambda f: (f / "generation_config.json").write_text(""))),
             "generation_config.json"),
        Case("0-byte adapter_config.json (peft_qfa.from_pretrained)", "files",
             lambda fx: _from_pretrained(fx, _damaged(fx, "supernet", "adc", lambda f: (f / "adapter_config.json").write_text("")), 3.0),
             "adapter_config.json"),
        Case("truncated adapter_model.safetensors", "files",
             lambda fx: _load(_damaged(fx, "supernet", "adm", lambda f: _truncate(f / "adapter_model.safetensors"))),
             "adapter_model.safetensors"),
        Case("adapter_config.json r disagrees with the adapters", "files",
             lambda fx: _load(_damaged(fx, "supernet", "adr", lambda f: edit_json(
                 f / "adapter_config.json", lambda c: c.update(r=1)))), "`r=1`"),
        Case("adapter_config.json r disagrees (search CLI)", "files",
             lambda fx: _cli_error(cli("search", _damaged(fx, "supernet", "adr2", lambda f: edit_json(
                 f / "adapter_config.json", lambda c: c.update(r=1))), "--budget", "3")), "`r=1`"),
        Case("adapter_config.json bits disagree with the supernet", "files",
             lambda fx: _load(_damaged(fx, "supernet", "adb", lambda f: edit_json(
                 f / "adapter_config.json", lambda c: c.update(bits=[3, 4])))), "bits"),
        Case("config bits=[5]", "files",
             lambda fx: _load(_damaged(fx, "bare_supernet", "b5", _with_qconfig(bits=[5]))), "bits"),
    ]


# (flag, bad value): each must be refused with a message naming the flag, before any work
TRAIN_FLAG_VALUES = (
    ("--group-size", "abc"), ("--lr", "abc"), ("--lr", "nan"), ("--lr", "-1"), ("--lora-alpha", "inf"),
    ("--max-grad-norm", "nan"), ("--bits", "5"), ("--bits", "2,x"), ("--r", "100"), ("--r", "0"), ("--steps", "0"),
    ("--seq-len", "abc"), ("--period", "0"), ("--save-steps", "0"), ("--lr-scheduler", "bogus"),
    ("--report-to", "bogus"), ("--calibration-samples", "0"), ("--search-tokens", "-1"), ("--seed", "x"),
)


def _train_flag_case(flag: str, value: str) -> Case:
    return Case(f"train {flag} {value}", "cli", lambda fx: _train(fx, flag, value), flag)


def _cli_cases() -> list[Case]:
    def search(fx, *extra, key="supernet"):
        return cli("search", fx[key] if key in fx else key, *extra)

    def export(fx, *extra, key="supernet", out="export_out"):
        return cli("export", fx[key], fresh_out(fx, out) if out else extra[0], *(extra if out else extra[1:]))

    return [
        *[_train_flag_case(flag, value) for flag, value in TRAIN_FLAG_VALUES],
        Case("train --group-size 48", "cli", lambda fx: _train(fx, "--group-size", "48"), "group_size=48"),
        Case("train --schedule fixed without --fixed-bits", "cli", lambda fx: _train(fx, "--schedule", "fixed"),
             "--fixed-bits"),
        Case("train --fixed-bits 5", "cli", lambda fx: _train(fx, "--schedule", "fixed", "--fixed-bits", "5"),
             "--fixed-bits"),
        Case("train --text-column nope", "cli", lambda fx: _train(fx, "--text-column", "nope"), "--text-column"),
        Case("train --config with an unknown key", "cli", lambda fx: _train(fx, "--config", _json_file(
            fx, "unknown.json", {"learning_rate": 1})), "unknown option"),
        Case("train --config not JSON", "cli", lambda fx: _train(fx, "--config", fx["a_file"]), "not valid JSON"),
        Case("train --method awq", "cli", lambda fx: _train(fx, "--method", "awq"), "--method"),
        Case("train --model missing", "cli", lambda fx: _train(fx, "--model", fx["root"] / "missing_model"),
             "--model"),
        Case("train --model a file", "cli", lambda fx: _train(fx, "--model", fx["a_file"]), "--model"),
        Case("train --model BERT", "cli", lambda fx: _train(fx, "--model", fx["bert"]), "decoder-only"),
        Case("train --model ViT", "cli", lambda fx: _train(fx, "--model", fx["vit"]), "--model"),
        Case("train --model a QFA supernet", "cli", lambda fx: _train(fx, "--model", fx["supernet"]), "--model"),
        Case("train --model a materialized model", "cli", lambda fx: _train(fx, "--model", fx["materialized"]),
             "--model"),
        Case("train --model GPT-2", "cli", lambda fx: _train(fx, "--model", fx["gpt2"]), "Conv1D"),
        Case("train --data missing.txt", "cli", lambda fx: _train(fx, "--data", fx["root"] / "missing.txt"),
             "--data"),
        Case("train --output a file", "cli", lambda fx: cli(
            "train", "--model", fx["fp"], "--data", fx["text"], "--output", fx["a_file"], "--method", "rtn"),
            "--output"),
        Case("train --resume missing", "cli", lambda fx: _train(fx, "--resume", fx["root"] / "nope"), "--resume"),
        Case("train --resume auto without checkpoints", "cli", lambda fx: _train(fx, "--resume", "auto"),
             "--resume auto"),
        Case("train --config missing.json", "cli", lambda fx: _train(fx, "--config", fx["root"] / "missing.json"),
             "config file"),
        Case("train without --model", "cli", lambda fx: cli("train", "--data", fx["text"], "--output", "x"),
             "--model"),
        Case("search missing supernet", "cli", lambda fx: search(fx, "--budget", "3", key=str(fx["root"] / "nope")),
             "SUPERNET"),
        Case("search --budget abc", "cli", lambda fx: search(fx, "--budget", "abc"), "--budget"),
        Case("search --budget 1.0", "cli", lambda fx: search(fx, "--budget", "1.0"), "--budget"),
        Case("search --budget 0", "cli", lambda fx: search(fx, "--budget", "0"), "--budget"),
        Case("search --budget 1KB", "cli", lambda fx: search(fx, "--budget", "1KB"), "--budget"),
        Case("export --budget 1MB", "cli", lambda fx: export(fx, "--budget", "1MB"), "'1MB' (1 MB)"),
        Case("search --budget 5GB", "cli", lambda fx: search(fx, "--budget", "5GB"), "--budget"),
        Case("export --subnet missing a group", "cli", lambda fx: export(fx, "--subnet", '{"model.layers.0": 4}'),
             "--subnet"),
        Case("search --budget 9", "cli", lambda fx: search(fx, "--budget", "9"), "--budget"),
        Case("search a materialized model", "cli", lambda fx: search(fx, "--budget", "3", key="materialized"),
             "materialized"),
        Case("search a full-precision model", "cli", lambda fx: search(fx, "--budget", "3", key="fp"),
             "not a QFA model"),
        Case("search --data missing.txt", "cli",
             lambda fx: search(fx, "--budget", "3", "--data", fx["root"] / "missing.txt"), "--data"),
        Case("search --max-tokens 1", "cli", lambda fx: search(fx, "--budget", "3", "--max-tokens", "1"),
             "--max-tokens"),
        Case("search --seq-len abc", "cli", lambda fx: search(fx, "--budget", "3", "--seq-len", "abc"), "--seq-len"),
        Case("search --out a file", "cli", lambda fx: search(fx, "--budget", "3", "--out", fx["a_file"]), "--out"),
        Case("search --data task.json not JSON", "cli", lambda fx: search(fx, "--budget", "3", "--data", _json_file(
            fx, "task.json", None)), "--data"),
        Case("search --data task.json without examples", "cli", lambda fx: search(fx, "--budget", "3", "--data",
             _json_file(fx, "task2.json", {"questions": []})), "--data"),
        Case("search --strategy bogus", "cli", lambda fx: search(fx, "--budget", "3", "--strategy", "bogus"),
             "--strategy"),
        Case("search a supernet without search data", "cli", lambda fx: search(fx, "--budget", "3",
                                                                           key="bare_supernet"), "--data"),
        Case("search data ids beyond the vocabulary", "cli", lambda fx: cli(
            "search", _damaged(fx, "supernet", "far", _far_ids), "--budget", "3"), "vocabulary"),
        Case("search truncated model.safetensors", "cli", lambda fx: cli(
            "search", _damaged(fx, "supernet", "trunc3", lambda f: _truncate(f / "model.safetensors")), "--budget",
            "3"), "model.safetensors"),
        Case("search invalid config.json", "cli", lambda fx: cli(
            "search", _damaged(fx, "supernet", "badjson", lambda f: (f / "config.json").write_text("{oops")),
            "--budget", "3"), "config.json"),
        Case("export OUTPUT is a file", "cli",
             lambda fx: export(fx, fx["a_file"], "--subnet", '{"model.layers.0": 4, "model.layers.1": 2}', out=None),
             "OUTPUT"),
        Case("export OUTPUT is the current folder", "cli",
             lambda fx: export(fx, ".", "--subnet", '{"model.layers.0": 4}', out=None), "OUTPUT"),
        Case("export --subnet bad JSON", "cli", lambda fx: export(fx, "--subnet", "{oops"), "--subnet"),
        Case("export --subnet bits 5", "cli", lambda fx: export(fx, "--subnet", '{"model.layers.0": 5}'),
             "--subnet"),
        Case("export --subnet unknown group", "cli",
             lambda fx: export(fx, "--subnet", '{"model.layers.9": 4, "model.layers.0": 4, "model.layers.1": 4}'),
             "model.layers.9"),
        Case("export --budget 9", "cli", lambda fx: export(fx, "--budget", "9"), "--budget"),
        Case("export --budget without data", "cli", lambda fx: export(fx, "--budget", "3", key="bare_supernet"),
             "--data"),
        Case("export --budget and --subnet", "cli",
             lambda fx: export(fx, "--budget", "3", "--subnet", "{}"), "--subnet"),
        Case("export missing supernet", "cli", lambda fx: cli(
            "export", fx["root"] / "nope", fresh_out(fx, "e2"), "--budget", "3"), "SUPERNET"),
        Case("push missing folder", "cli", lambda fx: cli("push", fx["root"] / "nope", "me/model"), "FOLDER"),
        Case("push invalid repo id", "cli", lambda fx: cli("push", fx["materialized"], "bad repo id!!"), "REPO_ID"),
        Case("push a full-precision folder", "cli", lambda fx: cli("push", fx["fp"], "me/model"), "not a QFA model"),
        Case("unknown command", "cli", lambda fx: cli("serve"), "serve"),
        Case("unknown flag", "cli", lambda fx: search(fx, "--budget", "3", "--frobnicate"), "--frobnicate"),
    ]


def all_cases() -> list[Case]:
    return _api_cases() + _file_cases() + _cli_cases()


# ---------------------------------------------------------------------------------------------- judging


def _watched(fx: dict) -> dict:
    return {key: _tree_digest(fx[key]) for key in ("fp", "supernet", "bare_supernet", "materialized")} | {
        "a_file": fx["a_file"].read_bytes(),
        "out": sorted(str(p) for p in (fx["root"] / "out").rglob("*")) if (fx["root"] / "out").exists() else [],
        "siblings": sorted(p.name for p in fx["root"].iterdir() if ".tmp-" in p.name or ".old-" in p.name),
    }


def judge(case: Case, fx: dict) -> tuple[str, str]:
    """``(verdict, message)`` for one case; see the module docstring for the verdicts."""
    before = _watched(fx)
    try:
        outcome = case.run(fx)
    except Exception as err:  # noqa: BLE001 (the point is to see what comes out)
        if case.surface == "cli":
            return "traceback", f"{type(err).__name__}: {err}"
        message = f"{type(err).__name__}: {err}"
    else:
        if case.surface != "cli":
            return "silent", "no error"
        # progress bars (transformers' weight loading) share stderr; the error is the `peft-qfa ...` line
        lines = [line for line in outcome.message.splitlines() if "\r" not in line and not PROGRESS.search(line)]
        message = "\n".join(line for line in lines if line.strip())
        if outcome.rc == 0:
            return "silent", f"rc 0: {message}"
        if outcome.rc != 2 or len(message.splitlines()) != 1:
            return "multi-line", f"rc {outcome.rc}: {message}"
        if "Loading weights" in outcome.message and not case.after_load:
            return "late", message
    if _watched(fx) != before:
        return "wrote", message
    return ("clear" if case.names in message else "unclear"), message


__all__ = ["Case", "all_cases", "build_fixtures", "judge"]
