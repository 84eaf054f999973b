"""One rank of a 2-process DDP (gloo, CPU) supernet training run; launched by test_train_ddp.py.

Usage: ``python -m torch.distributed.run --nproc_per_node 2 ddp_worker.py MODEL_DIR OUT_DIR GRAD_ACCUM [FIND_UNUSED [STATIC_GRAPH [TEACHER [OPTIM]]]]``
(``default``, ``true`` or ``false``: TrainingArguments' ``ddp_find_unused_parameters`` /
``ddp_static_graph``; TEACHER ``none``, ``float`` or ``subnet``: distillation with that teacher; OPTIM a ``TrainingArguments.optim``). Run without a launcher it trains in one process, the reference a DDP run must match. Each rank writes ``rank{r}.pt``: its adapter tensors,
the subnet it trained at every step and what the Trainer saw of the distributed setup.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

import peft_qfa
from peft_qfa import QFAConfig, QFAQuantizationConfig, QFASamplerCallback
from peft_qfa.testing import tiny_token_batches
from peft_qfa.train.distillation import (
    DistillationConfig,
    FloatTeacher,
    QFADistillationTrainer,
    SubnetTeacher,
)

STEPS = 6


class RecordSubnets(TrainerCallback):
    def __init__(self):
        self.subnets = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.subnets.append(dict(peft_qfa.get_subnet(model)))


FLAG = {"default": None, "true": True, "false": False}


def main(
    model_dir: str, out_dir: str, grad_accum: str, find_unused: str = "default", static_graph: str = "default",
    teacher: str = "none", optim: str = "adamw_torch",
) -> None:
    torch.set_num_threads(1)
    supernet = AutoModelForCausalLM.from_pretrained(
        model_dir, quantization_config=QFAQuantizationConfig(bits=(2, 3, 4), group_size=32, method="rtn")
    )
    torch.manual_seed(0)  # same adapter initialisation on every rank (DDP also broadcasts rank 0's)
    model = get_peft_model(supernet, QFAConfig(r=2, lora_alpha=4, target_modules="all-linear"))
    ids = tiny_token_batches(32, 16, seed=0)
    dataset = [{"input_ids": row, "labels": row} for row in ids]
    args = TrainingArguments(
        output_dir=str(Path(out_dir) / "trainer"),
        max_steps=STEPS,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=int(grad_accum),
        learning_rate=1e-2,
        optim=optim,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None,  # set by the launcher
        ddp_find_unused_parameters=FLAG[find_unused],
        ddp_static_graph=FLAG[static_graph],
        logging_steps=STEPS,
        disable_tqdm=True,
        seed=0,
    )
    recorder = RecordSubnets()
    callbacks = [QFASamplerCallback(seed=0), recorder]
    if teacher == "none":
        trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=callbacks)
    else:
        trainer = QFADistillationTrainer(
            model=model, args=args, train_dataset=dataset, callbacks=callbacks,
            teacher=SubnetTeacher() if teacher == "subnet" else FloatTeacher(AutoModelForCausalLM.from_pretrained(model_dir)),
            distillation=DistillationConfig(teacher=teacher, kl_weight=0.5, temperature=2.0),
        )
    trainer.train()
    wrapped = trainer.model_wrapped
    result = {
        "world_size": args.world_size,
        "parallel_mode": str(args.parallel_mode),
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "ddp": type(wrapped).__name__,
        "find_unused_parameters": getattr(wrapped, "find_unused_parameters", None),
        "subnets": recorder.subnets,
        "adapters": {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
    }
    torch.save(result, Path(out_dir) / f"rank{args.process_index}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
