"""``QFASamplerCallback``: one ``Trainer`` run trains every subnet of the supernet.

Before each optimizer step the callback activates ``sampler.sample(state.global_step)`` on the model.
Because the draw is a pure function of ``(seed, global step)``:

- every process of a distributed run activates the same subnet without any communication (so under
  DDP the unused adapters are the same on every rank, see ``docs/training.md``);
- a run resumed from a checkpoint continues the exact sequence of an uninterrupted one;
- gradient accumulation never mixes subnets: ``on_step_begin`` fires before the first micro-batch of
  an optimizer step only, so all micro-batches of one step share its subnet.

The per-group count of how often each bit-width's adapter was trained is resumable state, saved with
every Trainer checkpoint through transformers' ``ExportableState`` (``state()`` / ``from_state``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ..supernet.space import SearchSpace, Subnet
from ..supernet.subnet import search_space, set_subnet
from .samplers import SAMPLERS, FixedSampler, SubnetSampler, _check_period, _check_seed, build_sampler

AVG_BITS_LOG_KEY = "qfa/avg_bits"
"""Log key of the mean average bit-width of the subnets trained since the previous log."""


class QFASamplerCallback(TrainerCallback, ExportableState):
    """Samples the subnet each optimizer step trains, and counts what was trained.

    Args:
        schedule (`str` or `SubnetSampler`, *optional*, defaults to `"resource-balanced"`):
            A registered sampler name (``"resource-balanced"``, ``"uniform"``, ``"sandwich"``, ``"fixed"``)
            built lazily for the model's search space when training starts, or a ready
            [`SubnetSampler`] (then leave ``seed``, ``period`` and the options unset: they are the sampler's).
        seed (`int`, *optional*, defaults to 0):
            With the global step, the only input of each draw.
        period (`int`, *optional*):
            Optimizer steps per wave of a periodic schedule; defaults to 80% of ``state.max_steps``. A
            resumed run keeps the period of the run it resumes.
        **sampler_options:
            Extra settings of the named sampler, e.g. ``subnet=3`` (or ``{group: bits}``) for ``"fixed"``.

    Attributes:
        sampler (`SubnetSampler`): set when training starts (or the one passed in).
        bit_counts (`dict[str, dict[int, int]]`): ``{group: {bits: optimizer steps trained}}``.
        last_subnet (`Subnet`): the subnet of the latest optimizer step.

    Adds ``qfa/avg_bits`` (mean average bit-width of the subnets trained since the previous one) to every
    periodic training log (the ones with ``loss``).
    transformers calls its ``report_to`` integrations (TensorBoard, W&B) before user callbacks, so for them
    to receive the key put this callback first: ``trainer.callback_handler.callbacks.insert(1, callback)``
    (``peft-qfa train`` does); ``trainer.state.log_history`` gets it either way.
    """

    def __init__(
        self,
        schedule: str | SubnetSampler = "resource-balanced",
        seed: int | None = None,
        period: int | None = None,
        **sampler_options: Any,
    ):
        if isinstance(schedule, SubnetSampler):
            given = [name for name, value in (("seed", seed), ("period", period)) if value is not None]
            given += sorted(sampler_options)
            if given:
                raise ValueError(
                    f"QFASamplerCallback got a ready {type(schedule).__name__} and also {given}; those settings "
                    "belong to the sampler: pass them to build_sampler(...) instead."
                )
            self.sampler: SubnetSampler | None = schedule
            self.schedule = schedule.name
            self.seed = schedule.seed
            self.period = getattr(schedule, "period", None)
            self.sampler_options: dict[str, Any] = {}
        elif isinstance(schedule, str):
            if schedule not in SAMPLERS:
                raise ValueError(
                    f"QFASamplerCallback: unknown schedule {schedule!r}; known schedules: {sorted(SAMPLERS)} "
                    "(or pass a SubnetSampler)."
                )
            self.sampler = None
            self.schedule = schedule
            self.seed = _check_seed(0 if seed is None else seed, "QFASamplerCallback")
            self.period = None if period is None else _check_period(period, "QFASamplerCallback")
            self.sampler_options = dict(sampler_options)
        else:
            raise TypeError(
                f"QFASamplerCallback: `schedule` must be a sampler name such as 'resource-balanced' or a "
                f"SubnetSampler, got {type(schedule).__name__}."
            )
        self._user_sampler = self.sampler is not None
        self._bit_counts: dict[str, dict[int, int]] = {}
        self.resolved_period: int | None = self.period
        self.space_fingerprint: dict | None = None if self.sampler is None else self.sampler.fingerprint
        self.avg_bits_pending: list[float] = [0.0, 0]  # [sum, count] since the previous log
        self.last_subnet: Subnet | None = None

    # ------------------------------------------------------------------ resumable state
    @property
    def bit_counts(self) -> dict[str, dict[int, int]]:
        return self._bit_counts

    @bit_counts.setter
    def bit_counts(self, counts: Mapping[str, Mapping[Any, int]]) -> None:
        # JSON (a Trainer checkpoint) turns the int bit-widths into strings; read them back as ints.
        self._bit_counts = {group: {int(b): int(n) for b, n in per_bits.items()} for group, per_bits in counts.items()}

    def state(self) -> dict:
        """JSON-safe settings and counts; transformers writes them into every checkpoint's ``trainer_state.json``."""
        if self._user_sampler:
            args = dict(self.sampler.config())
            args["schedule"] = args.pop("name")
        else:
            options = {k: dict(v) if isinstance(v, Subnet) else v for k, v in self.sampler_options.items()}
            args = {"schedule": self.schedule, "seed": self.seed, "period": self.period, **options}
        return {
            "args": args,
            "attributes": {
                "bit_counts": {g: {str(b): n for b, n in c.items()} for g, c in self._bit_counts.items()},
                "resolved_period": self.resolved_period,
                "space_fingerprint": self.space_fingerprint,
                "avg_bits_pending": list(self.avg_bits_pending),
            },
        }

    def _saved_state(self, state) -> dict | None:
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        if isinstance(saved, list):
            saved = saved[0] if saved else None
        return saved

    def _restore(self, saved: dict) -> None:
        args, attributes = saved.get("args", {}), saved.get("attributes", {})
        ours = self.state()["args"]
        changed = {k: (args.get(k), ours.get(k)) for k in ("schedule", "seed") if args.get(k) != ours.get(k)}
        if changed:
            warnings.warn(
                f"QFASamplerCallback: resuming a run that sampled with {changed} (saved, now); the resumed run "
                "does not continue the checkpointed subnet sequence.",
                stacklevel=2,
            )
        saved_period = attributes.get("resolved_period")
        if self.period is not None and saved_period is not None and self.period != saved_period:
            warnings.warn(
                f"QFASamplerCallback: the checkpointed run used period={saved_period}, this one period={self.period}; "
                "the resumed run does not continue the checkpointed subnet sequence.",
                stacklevel=2,
            )
        self.bit_counts = attributes.get("bit_counts", {})
        self.resolved_period = saved_period
        self.space_fingerprint = attributes.get("space_fingerprint")
        self.avg_bits_pending = list(attributes.get("avg_bits_pending", [0.0, 0]))

    # ------------------------------------------------------------------ Trainer events
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise ValueError("QFASamplerCallback needs the model (the Trainer passes it to callbacks as `model=`).")
        space = search_space(model)
        resumed = self._saved_state(state) if state.global_step > 0 else None
        if resumed is not None:
            saved_fingerprint = resumed.get("attributes", {}).get("space_fingerprint")
            if saved_fingerprint is not None and saved_fingerprint != space.fingerprint():
                raise ValueError(
                    "QFASamplerCallback: the checkpoint being resumed was trained on another supernet (different "
                    "groups or bit-widths); resume it with the supernet it was saved from."
                )
            self._restore(resumed)
        else:
            if state.global_step > 0:
                warnings.warn(
                    f"QFASamplerCallback: resuming at step {state.global_step} from a checkpoint without sampler "
                    "state; the bit-width counts start from zero.",
                    stacklevel=2,
                )
            self.bit_counts, self.avg_bits_pending, self.resolved_period = {}, [0.0, 0], self.period
        self._prepare_sampler(space, state.max_steps)
        check_ddp_settings(args, self.sampler)
        self.space_fingerprint = self.sampler.fingerprint
        for group in space.group_names:
            self._bit_counts.setdefault(group, {})

    def _prepare_sampler(self, space: SearchSpace, max_steps: int) -> None:
        if self._user_sampler:
            if self.sampler.fingerprint != space.fingerprint():
                raise ValueError(
                    f"QFASamplerCallback: the {type(self.sampler).__name__} was built for another supernet "
                    f"({_describe(self.sampler.fingerprint)}) than the model being trained "
                    f"({_describe(space.fingerprint())}); build it with build_sampler(name, "
                    "peft_qfa.search_space(model)) for this model."
                )
            self.resolved_period = getattr(self.sampler, "period", None)
            return
        period = self.period if self.period is not None else self.resolved_period
        self.sampler = build_sampler(
            self.schedule, space, seed=self.seed, period=period, total_steps=max_steps, **self.sampler_options
        )
        self.resolved_period = getattr(self.sampler, "period", None)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self.sampler is None:
            raise RuntimeError("QFASamplerCallback.on_step_begin ran before on_train_begin built the sampler.")
        subnet = set_subnet(model, self.sampler.sample(state.global_step))
        for group, bits in subnet.items():
            per_group = self._bit_counts.setdefault(group, {})
            per_group[bits] = per_group.get(bits, 0) + 1
        self.avg_bits_pending[0] += subnet.avg_bits
        self.avg_bits_pending[1] += 1
        self.last_subnet = subnet

    def on_log(self, args, state, control, logs=None, **kwargs):
        total, count = self.avg_bits_pending
        # Only the periodic training logs (they carry "loss"), not eval metrics or the end-of-run summary.
        if logs is None or "loss" not in logs or count == 0:
            return
        value = total / count
        logs[AVG_BITS_LOG_KEY] = value
        # The Trainer appended a copy of `logs` to the history before calling the callbacks.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].setdefault(AVG_BITS_LOG_KEY, value)
        self.avg_bits_pending = [0.0, 0]

    # ------------------------------------------------------------------ reporting
    def summary(self) -> str:
        """A table of how many optimizer steps trained each bit-width's adapter, per group."""
        bits = sorted({b for per_group in self._bit_counts.values() for b in per_group} | _fingerprint_bits(self))
        name_width = max([len("group")] + [len(g) for g in self._bit_counts])
        header = f"{'group':<{name_width}} " + " ".join(f"{f'{b}-bit':>7}" for b in bits)
        lines = [header, "-" * len(header)]
        for group, per_group in self._bit_counts.items():
            lines.append(f"{group:<{name_width}} " + " ".join(f"{per_group.get(b, 0):>7}" for b in bits))
        totals = {b: sum(c.get(b, 0) for c in self._bit_counts.values()) for b in bits}
        lines.append("-" * len(header))
        lines.append(f"{'all groups':<{name_width}} " + " ".join(f"{totals[b]:>7}" for b in bits))
        return "\n".join(lines)


def check_ddp_settings(args, sampler: SubnetSampler) -> None:
    """Refuse DDP settings that break (or silently corrupt) training a supernet one subnet per step.

    Every step leaves the adapters of the bit-widths not sampled without a gradient. All ranks sample
    the same subnet, so the unused set is the same everywhere, which is what DDP's
    ``find_unused_parameters=True`` (the Trainer's default for a ``PeftModel``) handles: it leaves their
    ``grad`` at ``None`` and the optimizer skips them. With ``ddp_find_unused_parameters=False`` DDP stops
    at the second step waiting for those gradients; ``ddp_static_graph=True`` assumes the used set never
    changes, and measured here it either raises or, with ``find_unused_parameters=False``, trains to
    different (wrong) adapters without any error.
    """
    if getattr(args, "world_size", 1) <= 1:
        return
    if getattr(args, "ddp_find_unused_parameters", None) is False:
        raise ValueError(
            "QFASamplerCallback: `ddp_find_unused_parameters=False` cannot train a supernet under DDP: each step "
            "leaves the other bit-widths' adapters unused. Leave it unset (the Trainer then uses True for a "
            "PeftModel) or set it to True."
        )
    if getattr(args, "ddp_static_graph", None) and not isinstance(sampler, FixedSampler):
        raise ValueError(
            f"QFASamplerCallback: `ddp_static_graph=True` assumes every step uses the same parameters, but the "
            f"{sampler.name!r} schedule changes the trained adapters each step. Leave `ddp_static_graph` unset."
        )


def _fingerprint_bits(callback: QFASamplerCallback) -> set[int]:
    fingerprint = callback.space_fingerprint or {}
    return {int(b) for bits in fingerprint.get("groups", {}).values() for b in bits}


def _describe(fingerprint: dict) -> str:
    groups = fingerprint.get("groups", {})
    bits = sorted({int(b) for choices in groups.values() for b in choices})
    names = list(groups)[:2]
    return f"{len(groups)} {fingerprint.get('granularity')} groups such as {names}, bits {bits}"
