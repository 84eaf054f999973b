"""Helpers shared by the benchmark scripts: peak-memory readings and supernets cached between runs.

The supernet builds are the slow, repeatable part of several benchmarks (GPTQ of all three
bit-widths takes ten-odd minutes on 2 cores), so they are built once per setting, in a child
process (its full-precision build peak never counts against the caller's memory readings), and
kept under ``~/.cache/peft_qfa/benchmarks``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("PEFT_QFA_CACHE", Path.home() / ".cache" / "peft_qfa")) / "benchmarks"


def status_mib(field: str) -> float:
    """A ``Vm*`` line of ``/proc/self/status`` (kB) in MiB, e.g. ``VmHWM`` (peak RSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}; the benchmarks measure memory on Linux only.")


def reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current RSS, so the next peak reading covers only what follows."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


_BUILD = """
import sys, torch, peft_qfa
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft_qfa.testing import austen_texts, smollm2_path
from peft_qfa.train.recipe import token_blocks

method, group_size, samples, folder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
clip = sys.argv[5] == "clip"
calibration = None
if method == "gptq" or clip:  # windows of 512 tokens spread evenly over the five Austen training novels
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    blocks = token_blocks(Dataset.from_dict({"text": austen_texts()[0]}), tokenizer, 512)
    picks = torch.linspace(0, len(blocks) - 1, samples).long().tolist()
    calibration = torch.tensor([blocks[i]["input_ids"] for i in picks])
config = peft_qfa.QFAQuantizationConfig(
    bits=(2, 3, 4), group_size=group_size, method=method, calibration=calibration,
    calibration_samples=samples, calibration_seq_len=512, clip_search=clip,
)
model = AutoModelForCausalLM.from_pretrained(smollm2_path(), quantization_config=config, dtype=torch.float32)
model.save_pretrained(folder)
"""


def cached_supernet(
    method: str = "rtn", group_size: int = 64, calibration_samples: int = 64, clip: bool = False
) -> Path:
    """Folder of SmolLM2's 2/3/4-bit supernet for this setting, built on first use.

    GPTQ (and the clipping search, ``clip=True``) calibrates on ``calibration_samples`` windows of 512
    tokens of the Austen training novels (never persuasion.txt, the held-out text).
    """
    calibrated = method == "gptq" or clip
    name = f"smollm2-qfa-{method}{'-clip' if clip else ''}-g{group_size}-b234" + (
        f"-c{calibration_samples}x512" if calibrated else ""
    )
    folder = CACHE / name
    if not (folder / "config.json").is_file():
        print(f">> building the {method} supernet (group {group_size}) once into {folder}", flush=True)
        partial = folder.with_name(folder.name + ".partial")
        subprocess.run(
            [sys.executable, "-c", _BUILD, method, str(group_size), str(calibration_samples), str(partial),
             "clip" if clip else "none"],
            check=True,
        )
        partial.rename(folder)
    return folder
