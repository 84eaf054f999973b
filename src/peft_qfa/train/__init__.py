"""Once-for-all training: subnet samplers, the Trainer callback that applies them each step, the recipe."""

from .callback import AVG_BITS_LOG_KEY, QFASamplerCallback
from .recipe import train_supernet
from .samplers import (
    SAMPLERS,
    CandidateBitsSampler,
    FixedSampler,
    ResourceBalancedSampler,
    SandwichSampler,
    SubnetSampler,
    UniformSampler,
    build_sampler,
    max_entropy_distribution,
    register_sampler,
)

__all__ = [
    "AVG_BITS_LOG_KEY",
    "SAMPLERS",
    "CandidateBitsSampler",
    "FixedSampler",
    "QFASamplerCallback",
    "ResourceBalancedSampler",
    "SandwichSampler",
    "SubnetSampler",
    "UniformSampler",
    "build_sampler",
    "max_entropy_distribution",
    "register_sampler",
    "train_supernet",
]
