"""The peft-qfa story on the real SmolLM2-135M-Instruct, in a few minutes on a laptop CPU.

1. load SmolLM2 as a 2/3/4-bit supernet (RTN by default, ``--method gptq`` for GPTQ);
2. add decoupled QA-LoRA adapters (one per bit-width per layer);
3. train once with the resource-balanced sampler (``QFASamplerCallback``);
4. report held-out perplexity of the all-2, all-3 and all-4 subnets before and after training;
5. materialize one subnet (merge adapters into the integer weights, pack), save it, reload it
   with plain ``AutoModelForCausalLM.from_pretrained`` and generate from it.

Text: by default the CPython documentation topics that ship with every Python
(``pydoc_data.topics``, real English prose about Python); pass ``--text FILE`` for your own.

    python examples/demo.py [--steps 20] [--method rtn|gptq] [--text FILE] [--out out/demo]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

import peft_qfa
from peft_qfa import QFAConfig, QFAQuantizationConfig, QFASamplerCallback
from peft_qfa.testing import perplexity, smollm2_path


def default_corpus() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


class TokenWindows(torch.utils.data.Dataset):
    """Fixed-length causal-LM windows over one long token sequence."""

    def __init__(self, ids: torch.Tensor, seq_len: int):
        n = ids.numel() // seq_len
        if n == 0:
            raise ValueError(f"The training text has {ids.numel()} tokens, fewer than one window of {seq_len}.")
        self.windows = ids[: n * seq_len].reshape(n, seq_len)

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        return {"input_ids": self.windows[i], "labels": self.windows[i]}


def subnet_perplexities(model, eval_ids) -> dict[int, float]:
    space = peft_qfa.search_space(model)
    result = {}
    for bits in space.all_bits:
        with peft_qfa.use_subnet(model, space.uniform(bits)):
            result[bits] = perplexity(model, eval_ids, seq_len=256)
    return result


def main():
    parser = argparse.ArgumentParser(description="peft-qfa end-to-end demo on SmolLM2-135M-Instruct")
    parser.add_argument("--text", type=Path, help="a UTF-8 text file to train and evaluate on")
    parser.add_argument("--method", choices=("rtn", "gptq"), default="rtn")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--eval-tokens", type=int, default=4096)
    parser.add_argument("--deploy-bits", type=int, default=3, help="bit-width of the subnet to materialize")
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    args = parser.parse_args()
    torch.manual_seed(0)
    started = time.perf_counter()

    path = smollm2_path()
    text = args.text.read_text(encoding="utf-8") if args.text else default_corpus()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    eval_ids, train_ids = ids[: args.eval_tokens], ids[args.eval_tokens :]
    print(f"corpus: {ids.numel()} tokens ({args.eval_tokens} held out)")

    calibration = train_ids[: 32 * 512].reshape(32, 512) if args.method == "gptq" else None
    model = AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=QFAQuantizationConfig(bits=(2, 3, 4), group_size=64, method=args.method,
                                                  calibration=calibration),
    )
    space = peft_qfa.search_space(model)
    print(f"supernet: {space}, {space.supernet_bytes() / 2**20:.1f} MiB")
    model = get_peft_model(model, QFAConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    before = subnet_perplexities(model, eval_ids)

    training_args = TrainingArguments(
        output_dir=str(args.out / "trainer"), max_steps=args.steps, per_device_train_batch_size=2,
        learning_rate=1e-3, logging_steps=5, save_strategy="no", report_to=[], use_cpu=True,
        disable_tqdm=False,
    )
    callback = QFASamplerCallback(schedule="resource-balanced", seed=0)
    Trainer(model=model, args=training_args, train_dataset=TokenWindows(train_ids, args.seq_len),
            callbacks=[callback]).train()
    after = subnet_perplexities(model, eval_ids)

    deployed = peft_qfa.materialize(model, space.uniform(args.deploy_bits))
    deployed.save_pretrained(args.out / f"smollm2-qfa-{args.deploy_bits}bit")
    tokenizer.save_pretrained(args.out / f"smollm2-qfa-{args.deploy_bits}bit")
    reloaded = AutoModelForCausalLM.from_pretrained(args.out / f"smollm2-qfa-{args.deploy_bits}bit")
    prompt = tokenizer("Python lists are", return_tensors="pt")
    sample = reloaded.generate(**prompt, max_new_tokens=20, do_sample=False)

    print("\n| subnet | avg bits | materialized MiB | held-out ppl before | after training |")
    print("|---|---:|---:|---:|---:|")
    for bits in space.all_bits:
        cost = space.cost(space.uniform(bits))
        print(f"| all-{bits} | {cost.avg_bits:.2f} | {cost.bytes / 2**20:.1f} | {before[bits]:.2f} | {after[bits]:.2f} |")
    print(f"\nreloaded {args.deploy_bits}-bit model: {tokenizer.decode(sample[0], skip_special_tokens=True)!r}")
    print(f"saved to {args.out / f'smollm2-qfa-{args.deploy_bits}bit'}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
