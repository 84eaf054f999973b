"""Kill saves and checkpoint writes at random moments; print what every resulting folder holds (JSON).

    python fault_worker.py WORKDIR N_SAVE_KILLS N_CHECKPOINT_KILLS SEED

Run by ``tests/reliability/test_faults.py`` as a subprocess. The imports and the tiny models are
made once; every kill round forks a child that saves (``save_supernet``) or trains with a checkpoint
every step, and SIGKILLs it after a delay drawn from a seeded RNG. Then:

* saves: the target folder, after :func:`peft_qfa.atomic.recover_folder` (what every entry point
  runs first), must hold exactly the files of the old state or of the new one, and load;
* checkpoints: every ``checkpoint-N`` is either complete (and its files load) or is reported
  incomplete, and ``--resume auto``'s choice is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)  # forked children must not inherit a busy OpenMP pool

from peft import get_peft_model  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

import peft_qfa  # noqa: E402
from peft_qfa import QFAConfig, QFAQuantizationConfig  # noqa: E402
from peft_qfa.atomic import recover_folder  # noqa: E402
from peft_qfa.testing import tiny_llama, tiny_token_batches  # noqa: E402
from peft_qfa.train.resume import incomplete_reason, latest_complete_checkpoint  # noqa: E402


def _content_hash(path: Path) -> str:
    """A file's hash; for safetensors, of its tensors by name (the header's key order may vary between saves)."""
    digest = hashlib.sha256()
    if path.suffix != ".safetensors":
        digest.update(path.read_bytes())
        return digest.hexdigest()
    for name, tensor in sorted(load_file(path).items()):
        digest.update(name.encode())
        digest.update(tensor.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _content_hash(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def kill_after(delay: float, work, trigger=None) -> bool:
    """Fork, run ``work()`` in the child and SIGKILL it ``delay`` s after ``trigger()`` first holds (default: at
    once); returns whether it was still running. A trigger makes the kill land inside a write even on a busy machine."""
    pid = os.fork()
    if pid == 0:  # the child: work, then leave without running the parent's exit handlers
        try:
            work()
        finally:
            os._exit(0)
    give_up = time.perf_counter() + 60.0
    while trigger is not None and not trigger() and time.perf_counter() < give_up:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
        time.sleep(0.001)
    deadline = time.perf_counter() + delay
    while time.perf_counter() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
        time.sleep(min(0.002, max(0.0, deadline - time.perf_counter())))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return True


def _repeat(work):
    def forever():
        while True:
            work()
    return forever


def save_rounds(root: Path, n: int, rng: random.Random) -> list[dict]:
    fp = root / "fp"
    tiny_llama(seed=0).save_pretrained(fp)
    states, references = {}, {}
    for name, seed in (("a", 1), ("b", 2)):
        supernet = AutoModelForCausalLM.from_pretrained(
            fp, quantization_config=QFAQuantizationConfig(group_size=32, method="rtn")
        )
        torch.manual_seed(seed)
        model = get_peft_model(supernet, QFAConfig(r=2, lora_alpha=4, init_weights=False))
        states[name] = (model, tiny_token_batches(2, 16, seed=seed))
    target = root / "target"
    for name, (model, ids) in states.items():  # saved where the rounds save: the folder's card and adapter config name it
        peft_qfa.save_supernet(model, target, search_data=ids)
        references[name] = file_hashes(target)
    peft_qfa.save_supernet(states["a"][0], target, search_data=states["a"][1])
    started = time.perf_counter()  # how long a save takes in a forked child (copy-on-write makes it slower)
    kill_after(60.0, lambda: peft_qfa.save_supernet(states["a"][0], target, search_data=states["a"][1]))
    seconds = time.perf_counter() - started
    current = "a"
    results = []
    staging = lambda: any(p.name.startswith("target.tmp-") for p in root.iterdir())  # noqa: E731
    for i in range(n):
        new = "b" if current == "a" else "a"
        model, ids = states[new]
        save = _repeat(lambda m=model, i=ids: peft_qfa.save_supernet(m, target, search_data=i))
        if i % 2:  # a random moment after the save started
            delay = rng.uniform(0.0, 1.5 * seconds)
            killed = kill_after(delay, save)
        else:  # a random moment once the staging folder exists: inside the write
            delay = rng.uniform(0.0, 0.3 * seconds)
            killed = kill_after(delay, save, trigger=staging)
        before = sorted(p.name for p in root.iterdir() if p.name.startswith("target."))
        recovered = recover_folder(target) is not None
        hashes = file_hashes(target) if target.is_dir() else {}
        state = next((k for k, ref in references.items() if ref == hashes), None)
        loaded = False
        if state is not None:
            loaded_model = AutoModelForCausalLM.from_pretrained(target)
            loaded = any(".qfa_" in n for n, _ in loaded_model.named_parameters())
        strays = sorted(p.name for p in root.iterdir() if p.name.startswith("target."))
        results.append({"delay": round(delay, 4), "killed": killed, "state": state, "expected_new": new,
                        "loaded": loaded, "recovered": recovered, "strays": strays, "siblings_at_kill": before})
        current = state or current
    return results


def checkpoint_rounds(root: Path, n: int, rng: random.Random) -> list[dict]:
    fp = root / "fp_ckpt"
    tiny_llama(seed=0).save_pretrained(fp)
    data = [{"input_ids": row, "labels": row} for row in tiny_token_batches(64, 16, seed=0)]
    results = []
    for i in range(n):
        supernet = AutoModelForCausalLM.from_pretrained(
            fp, quantization_config=QFAQuantizationConfig(group_size=32, method="rtn")
        )
        model = get_peft_model(supernet, QFAConfig(r=2, lora_alpha=4))
        out = root / f"ckpt_{i}"
        args = TrainingArguments(output_dir=str(out), max_steps=1000, per_device_train_batch_size=2, save_steps=1,
                                 save_strategy="steps", report_to="none", use_cpu=True, logging_steps=1000,
                                 disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator)
        first = out / "checkpoint-1"
        if i % 2:  # a random moment after the first checkpoint
            delay = rng.uniform(0.0, 0.5)
            kill_after(delay, trainer.train, trigger=first.is_dir)
        else:  # the moment a later checkpoint folder exists without its trainer_state.json: inside the write
            delay, after = 0.0, rng.randint(2, 4)
            kill_after(delay, trainer.train, trigger=lambda o=out, a=after: any(
                int(p.name.split("-")[1]) >= a and not (p / "trainer_state.json").exists()
                for p in o.glob("checkpoint-*")))
        folders = []
        newest = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-3:]
        for folder in newest:  # the last ones: the kill can only have hit the newest
            reason = incomplete_reason(folder)
            loads = None
            if reason is None:
                json.loads((folder / "trainer_state.json").read_text())
                load_file(folder / "adapter_model.safetensors")
                torch.load(folder / "optimizer.pt", weights_only=True)
                loads = True
            folders.append({"name": folder.name, "incomplete": reason, "loads": loads})
        chosen, skipped = latest_complete_checkpoint(out)
        results.append({"delay": round(delay, 4), "folders": folders, "chosen": chosen and Path(chosen).name,
                        "skipped": skipped, "timed_to_a_write": not i % 2})
    return results


def main() -> None:
    root, n_save, n_checkpoint, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    rng = random.Random(seed)
    report = {"saves": save_rounds(root, n_save, rng), "checkpoints": checkpoint_rounds(root, n_checkpoint, rng)}
    print("FAULT-REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
