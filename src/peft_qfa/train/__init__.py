"""Once-for-all training: subnet samplers and the Trainer callback that applies them each step."""

from .callback import AVG_BITS_LOG_KEY, QFASamplerCallback
from .samplers import (
    SAMPLERS,
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
    "FixedSampler",
    "QFASamplerCallback",
    "ResourceBalancedSampler",
    "SandwichSampler",
    "SubnetSampler",
    "UniformSampler",
    "build_sampler",
    "max_entropy_distribution",
    "register_sampler",
]
