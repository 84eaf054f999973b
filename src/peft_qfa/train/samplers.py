"""Subnet samplers: which subnet of the supernet one optimizer step trains.

Every sampler is built for one :class:`~peft_qfa.SearchSpace` (it keeps the space's fingerprint) and
``sampler.sample(step)`` is a pure function of ``(seed, step)``: the draw never depends on what was
sampled before. That is what lets every process of a distributed run pick the same subnet without
talking to the others, and a resumed run continue the exact sequence of an uninterrupted one.

- ``uniform``: each group picks a bit-width uniformly (the paper's baseline). The average bit-width
  of a draw is a mean of many independent choices, so it hardly ever leaves the middle of the
  range (std ``sqrt(2/3 / n_groups)`` bits for ``{2, 3, 4}``): near-all-2 and near-all-4 subnets,
  and their adapters, are starved.
- ``resource-balanced``: LLM-QFA's non-parametric scheduler. A target average bit-width follows a
  triangle wave from the highest candidate to the lowest and back over ``period`` steps, and each
  group draws from the maximum-entropy categorical whose mean is the target. Over one period the
  trained subnets' average bits cover the whole range about evenly.
- ``sandwich``: the once-for-all "largest + smallest + random" rule, one subnet per optimizer step,
  cycling largest, smallest, random over consecutive steps.
- ``fixed``: one subnet every step (QA-LoRA-style single-budget training, or debugging).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..supernet.space import SearchSpace, Subnet
from ..supernet.tilt import max_entropy_distribution

DEFAULT_PERIOD_FRACTION = 0.8
"""The resource-balanced period, as a fraction of the training steps, when none is given (the paper: 8K of 10K)."""

SAMPLERS: dict[str, type[SubnetSampler]] = {}
"""Registered samplers by name; :func:`build_sampler` and the Trainer callback look names up here."""


def register_sampler(cls: type[SubnetSampler]) -> type[SubnetSampler]:
    """Class decorator: make a sampler buildable by its ``name`` (and restorable from a checkpoint)."""
    if not (isinstance(cls, type) and issubclass(cls, SubnetSampler)):
        raise TypeError(f"register_sampler: {cls!r} is not a SubnetSampler subclass.")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_sampler: {cls.__name__} needs a non-empty class attribute `name`.")
    if name in SAMPLERS and SAMPLERS[name] is not cls:
        raise ValueError(f"register_sampler: the name {name!r} is already taken by {SAMPLERS[name].__name__}.")
    SAMPLERS[name] = cls
    return cls


def _check_seed(seed: Any, owner: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{owner}: `seed` must be a non-negative int, got {seed!r}.")
    return int(seed)


def _check_period(period: Any, owner: str) -> int:
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)):
        raise TypeError(f"{owner}: `period` must be an int number of optimizer steps, got {period!r}.")
    if period <= 0:
        raise ValueError(
            f"{owner}: `period={period}` must be a positive number of optimizer steps "
            f"(or None for {DEFAULT_PERIOD_FRACTION:.0%} of training)."
        )
    return int(period)


def _check_step(step: Any, owner: str) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"{owner}.sample: `step` must be a non-negative int (the optimizer step), got {step!r}.")
    return int(step)


class SubnetSampler(ABC):
    """The interface every sampler shares: built for a space, ``sample(step) -> Subnet``.

    Subclasses set a class attribute ``name`` and implement :meth:`draw`, which receives a random
    generator seeded by ``(seed, step)`` alone.

    Args:
        space (`SearchSpace`): the supernet's search space (``peft_qfa.search_space(model)``).
        seed (`int`, *optional*, defaults to 0): with the step, the only input of every draw.
    """

    name: ClassVar[str]
    periodic: ClassVar[bool] = False
    """Whether the sampler has a ``period`` (then :func:`build_sampler` resolves its default)."""

    def __init__(self, space: SearchSpace, seed: int = 0):
        if not isinstance(space, SearchSpace):
            raise TypeError(
                f"{type(self).__name__} is built for a peft_qfa.SearchSpace (peft_qfa.search_space(model)), "
                f"got {type(space).__name__}."
            )
        self.space = space
        self.seed = _check_seed(seed, type(self).__name__)
        self.fingerprint = space.fingerprint()

    def sample(self, step: int) -> Subnet:
        """The subnet to train at optimizer step ``step``; the same ``(seed, step)`` always gives the same one."""
        step = _check_step(step, type(self).__name__)
        rng = np.random.default_rng([self.seed, step])
        return self.space.subnet(self.draw(step, rng))

    @abstractmethod
    def draw(self, step: int, rng: np.random.Generator) -> Mapping[str, int]:
        """``{group: bits}`` for ``step``, using only ``step``, ``rng`` and the sampler's settings."""

    def config(self) -> dict[str, Any]:
        """The JSON-safe settings that rebuild this sampler with :func:`build_sampler` (for logs and checkpoints)."""
        return {"name": self.name, "seed": self.seed}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({settings}, space={self.space!r})"


@register_sampler
class UniformSampler(SubnetSampler):
    """Each group picks one of its candidate bit-widths with equal probability (the paper's baseline)."""

    name = "uniform"

    def draw(self, step: int, rng: np.random.Generator) -> dict[str, int]:
        return uniform_draw(self.space, rng)


def uniform_draw(space: SearchSpace, rng: np.random.Generator) -> dict[str, int]:
    """Each group's bit-width picked uniformly from its candidates."""
    picks = rng.integers(0, [len(g.bits) for g in space.groups])
    return {g.name: g.bits[i] for g, i in zip(space.groups, picks, strict=True)}


@register_sampler
class ResourceBalancedSampler(SubnetSampler):
    """LLM-QFA's resource-balanced scheduler: a triangle-wave target average bit-width.

    At step ``t`` the target is ``b_min + (b_max - b_min) * |2 u - 1|`` with ``u = (t mod period) / period``:
    it starts at the highest candidate bit-width, reaches the lowest at half a period and comes back,
    so over one period the target sweeps the range evenly. Each group then draws its bit-width from
    the maximum-entropy categorical over its candidates whose mean is the target
    (:func:`max_entropy_distribution`); the parameter-weighted average bits of the draw therefore has
    the target as its expectation. A group whose candidates do not reach the target saturates at its
    nearest end.

    Args:
        space (`SearchSpace`): the supernet's search space.
        seed (`int`, *optional*, defaults to 0): with the step, the only input of every draw.
        period (`int`): steps per full wave (high -> low -> high); the paper uses 80% of training.
    """

    name = "resource-balanced"
    periodic = True

    def __init__(self, space: SearchSpace, seed: int = 0, *, period: int):
        super().__init__(space, seed)
        self.period = _check_period(period, type(self).__name__)
        self.low_bits, self.high_bits = min(space.all_bits), max(space.all_bits)

    def target_bits(self, step: int) -> float:
        """The target average bit-width at ``step`` (the triangle wave)."""
        phase = (step % self.period) / self.period
        return self.low_bits + (self.high_bits - self.low_bits) * abs(2.0 * phase - 1.0)

    def draw(self, step: int, rng: np.random.Generator) -> dict[str, int]:
        target = self.target_bits(step)
        uniforms = rng.random(len(self.space.groups))
        bits = {}
        for group, u in zip(self.space.groups, uniforms, strict=True):
            cdf = np.cumsum(max_entropy_distribution(tuple(group.bits), target))
            index = min(int(np.searchsorted(cdf, u, side="right")), len(group.bits) - 1)
            bits[group.name] = group.bits[index]
        return bits

    def config(self) -> dict[str, Any]:
        return {**super().config(), "period": self.period}


@register_sampler
class SandwichSampler(SubnetSampler):
    """The once-for-all sandwich rule with one subnet per optimizer step.

    The classic rule trains the largest, the smallest and a random subnet every step (three forward
    passes). With one subnet per optimizer step it becomes a cycle over consecutive steps:
    ``step % 3 == 0`` every group at its highest bit-width, ``== 1`` every group at its lowest,
    ``== 2`` a uniform draw. Each extreme gets a third of the steps.
    """

    name = "sandwich"

    def draw(self, step: int, rng: np.random.Generator) -> dict[str, int]:
        phase = step % 3
        if phase == 0:
            return {g.name: max(g.bits) for g in self.space.groups}
        if phase == 1:
            return {g.name: min(g.bits) for g in self.space.groups}
        return uniform_draw(self.space, rng)


@register_sampler
class FixedSampler(SubnetSampler):
    """The same subnet every step.

    Args:
        space (`SearchSpace`): the supernet's search space.
        seed (`int`, *optional*, defaults to 0): unused (kept for the shared interface).
        subnet (`Subnet`, `dict[str, int]` or `int`): the subnet, a ``{group: bits}`` mapping, or one
            bit-width for every group.
    """

    name = "fixed"

    def __init__(self, space: SearchSpace, seed: int = 0, *, subnet: Subnet | Mapping[str, int] | int):
        super().__init__(space, seed)
        if isinstance(subnet, bool) or subnet is None:
            raise TypeError(
                "FixedSampler: `subnet` must be a Subnet, a {group: bits} dict or one int bit-width, "
                f"got {subnet!r}."
            )
        if isinstance(subnet, (int, np.integer)):
            if subnet not in space.all_bits:
                raise ValueError(f"FixedSampler: `subnet={subnet}` bits is not a candidate; choose from {space.all_bits}.")
            self.subnet = space.uniform(int(subnet))
        elif isinstance(subnet, Mapping):  # a Subnet is a Mapping too
            self.subnet = space.subnet(subnet)
        else:
            raise TypeError(
                "FixedSampler: `subnet` must be a Subnet, a {group: bits} dict or one int bit-width, "
                f"got {type(subnet).__name__}."
            )

    def draw(self, step: int, rng: np.random.Generator) -> Mapping[str, int]:
        return self.subnet

    def config(self) -> dict[str, Any]:
        bits = set(self.subnet.values())
        return {**super().config(), "subnet": bits.pop() if len(bits) == 1 else dict(self.subnet)}


def default_period(total_steps: int) -> int:
    """``DEFAULT_PERIOD_FRACTION`` of ``total_steps``, at least one step."""
    return max(1, math.ceil(DEFAULT_PERIOD_FRACTION * total_steps))


def build_sampler(
    name: str,
    space: SearchSpace,
    seed: int = 0,
    period: int | None = None,
    total_steps: int | None = None,
    **options: Any,
) -> SubnetSampler:
    """Build a registered sampler by name.

    Args:
        name (`str`): ``"resource-balanced"``, ``"uniform"``, ``"sandwich"``, ``"fixed"`` or a name
            registered with :func:`register_sampler`.
        space (`SearchSpace`): the supernet's search space.
        seed (`int`, *optional*, defaults to 0): the seed every draw derives from.
        period (`int`, *optional*): the wave period of periodic samplers in optimizer steps; defaults to
            80% of ``total_steps``. Ignored by the others, but must be positive if given.
        total_steps (`int`, *optional*): the run's optimizer steps, for the default period.
        **options: sampler-specific settings, e.g. ``subnet=3`` for ``"fixed"``; and, for every sampler,
            ``train_bits``, ``warmup_steps`` and ``warmup_bits`` (see :class:`CandidateBitsSampler`).

    Raises:
        `ValueError`: an unknown name (the message lists the known ones), a non-positive ``period``, or a
            periodic sampler with neither ``period`` nor ``total_steps``.
    """
    if name not in SAMPLERS:
        raise ValueError(f"Unknown QFA sampler schedule {name!r}; known schedules: {sorted(SAMPLERS)}.")
    if period is not None:
        period = _check_period(period, f"QFA sampler {name!r}")
    if any(key in options for key in CANDIDATE_OPTIONS):
        staged = {key: options.pop(key) for key in CANDIDATE_OPTIONS if key in options}
        return CandidateBitsSampler(
            space, name, seed=seed, period=period, total_steps=total_steps, **staged, **options
        )
    cls = SAMPLERS[name]
    if not cls.periodic:
        return cls(space, seed, **options)
    if period is None:
        if total_steps is None or total_steps <= 0:
            raise ValueError(
                f"QFA sampler {name!r} needs `period` (optimizer steps per wave) or `total_steps` (then the "
                f"period is {DEFAULT_PERIOD_FRACTION:.0%} of it); got neither."
            )
        period = default_period(total_steps)
    return cls(space, seed, period=period, **options)


CANDIDATE_OPTIONS = ("train_bits", "warmup_steps", "warmup_bits")
"""Options of :func:`build_sampler` that restrict which bit-widths a sampler may draw."""


def _check_bits_subset(bits: Any, space: SearchSpace, option: str) -> tuple[int, ...]:
    if isinstance(bits, (bool, str)) or not isinstance(bits, (list, tuple, set, frozenset)) or not bits:
        raise TypeError(f"QFA sampler: `{option}` must be a non-empty list of bit-widths like [3, 4], got {bits!r}.")
    if not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in bits):
        raise TypeError(f"QFA sampler: `{option}` must hold ints, got {bits!r}.")
    unknown = sorted(set(int(b) for b in bits) - set(space.all_bits))
    if unknown:
        raise ValueError(
            f"QFA sampler: `{option}={sorted(bits)}` names bit-width(s) {unknown} the supernet does not hold "
            f"(it holds {list(space.all_bits)})."
        )
    return tuple(sorted(set(int(b) for b in bits)))


class CandidateBitsSampler(SubnetSampler):
    """A named sampler that draws from some of the supernet's bit-widths, with an optional warm-up set.

    Why: a step whose subnet puts some groups at the lowest bit-width also trains the higher-bit
    adapters of every other group to make up for that error, an error those adapters never see in a
    uniform higher-bit subnet. Training on ``train_bits`` only (e.g. ``[3, 4]``), or adding the lowest
    bit-width after ``warmup_steps`` optimizer steps, tests and avoids that interference. The supernet
    keeps every bit-width; only the draws are restricted.

    Built by :func:`build_sampler` (and ``QFASamplerCallback``) when one of these options is given:

    Args:
        space (`SearchSpace`): the supernet's full search space.
        schedule (`str`): the registered sampler that draws within the allowed bit-widths.
        seed (`int`, *optional*, defaults to 0), period (`int`, *optional*), total_steps (`int`, *optional*):
            as for :func:`build_sampler`.
        train_bits (`list[int]`, *optional*): the bit-widths drawn after the warm-up; default all.
        warmup_steps (`int`, *optional*, defaults to 0): optimizer steps drawn from ``warmup_bits``.
        warmup_bits (`list[int]`, *optional*): the bit-widths of the warm-up; default ``train_bits``
            without its lowest.
        **options: the named sampler's own settings.
    """

    name = "candidate-bits"

    def __init__(
        self,
        space: SearchSpace,
        schedule: str,
        seed: int = 0,
        period: int | None = None,
        total_steps: int | None = None,
        *,
        train_bits: Any = None,
        warmup_steps: Any = 0,
        warmup_bits: Any = None,
        **options: Any,
    ):
        super().__init__(space, seed)
        if schedule not in SAMPLERS:
            raise ValueError(f"Unknown QFA sampler schedule {schedule!r}; known schedules: {sorted(SAMPLERS)}.")
        self.train_bits = space.all_bits if train_bits is None else _check_bits_subset(train_bits, space, "train_bits")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) or warmup_steps < 0:
            raise ValueError(f"QFA sampler: `warmup_steps` must be a non-negative int, got {warmup_steps!r}.")
        self.warmup_steps = int(warmup_steps)
        if warmup_bits is not None and self.warmup_steps == 0:
            raise ValueError("QFA sampler: `warmup_bits` is given but `warmup_steps` is 0; set both or neither.")
        if warmup_bits is None:
            warmup_bits = self.train_bits[1:] or self.train_bits
            if self.warmup_steps and len(self.train_bits) == 1:
                raise ValueError(
                    f"QFA sampler: a warm-up needs at least two `train_bits` (it leaves out the lowest), got "
                    f"{list(self.train_bits)}; pass `warmup_bits` explicitly."
                )
        self.warmup_bits = _check_bits_subset(warmup_bits, space, "warmup_bits")
        self.schedule = schedule
        build = dict(seed=seed, period=period, total_steps=total_steps, **options)
        self.main = build_sampler(schedule, space.restricted(self.train_bits), **build)
        self.warmup = build_sampler(schedule, space.restricted(self.warmup_bits), **build) if self.warmup_steps else None
        self.period = getattr(self.main, "period", None)

    def draw(self, step: int, rng: np.random.Generator) -> Mapping[str, int]:
        phase = self.warmup if step < self.warmup_steps else self.main
        return dict(phase.draw(step, rng))  # a plain mapping: the full space's Subnet is made by `sample`

    def config(self) -> dict[str, Any]:
        # the inner sampler already reports its own options (JSON-safe: a fixed subnet as a dict)
        config = {**self.main.config(), "train_bits": list(self.train_bits)}
        if self.warmup_steps:
            config.update(warmup_steps=self.warmup_steps, warmup_bits=list(self.warmup_bits))
        return config
