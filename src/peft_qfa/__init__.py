"""peft-qfa: fine-tune a quantized LLM once, deploy it at any bit budget (LLM-QFA).

``import peft_qfa`` registers the ``"qfa"`` transformers quantization method and the ``QFA``
PEFT tuner type; load and save supernets only after importing it.
"""

__version__ = "0.1.0"

# Sorted by module (ruff's isort); each group is named in __all__ below. `_compat` comes first: importing
# it refuses an out-of-range torch, transformers or peft before the modules below import them.
from ._compat import versions  # noqa: F401
from .checkpoint import save_supernet
from .deploy import HubPushError, from_pretrained, materialize, push_to_hub
from .exporters import export
from .integrations import QFAHfQuantizer  # importing registers the "qfa" transformers quantizer
from .search import SearchResult, plot_pareto, search_subnet
from .supernet.budget import Budget
from .supernet.config import QFAQuantizationConfig
from .supernet.integrity import allow_other_supernet
from .supernet.layer import QFALinear
from .supernet.packed_layer import QFAPackedLinear
from .supernet.space import SearchSpace, Subnet
from .supernet.subnet import get_subnet, search_space, set_subnet, use_subnet
from .train import (
    FixedSampler,
    QFASamplerCallback,
    ResourceBalancedSampler,
    SandwichSampler,
    SubnetSampler,
    UniformSampler,
    build_sampler,
    register_sampler,
    train_supernet,
)
from .tuner import (  # registers PeftType.QFA
    QFAConfig,
    QFAModel,
    merge_into_quantized,
    merged_quantized_weights,
)

__all__ = [
    # supernet
    "Budget",
    "QFALinear",
    "QFAPackedLinear",
    "QFAQuantizationConfig",
    "SearchSpace",
    "Subnet",
    "allow_other_supernet",
    "get_subnet",
    "save_supernet",
    "search_space",
    "set_subnet",
    "use_subnet",
    # tuner
    "QFAConfig",
    "QFAModel",
    "merge_into_quantized",
    "merged_quantized_weights",
    # train
    "FixedSampler",
    "QFASamplerCallback",
    "ResourceBalancedSampler",
    "SandwichSampler",
    "SubnetSampler",
    "UniformSampler",
    "build_sampler",
    "register_sampler",
    "train_supernet",
    # search
    "SearchResult",
    "plot_pareto",
    "search_subnet",
    # deploy
    "HubPushError",
    "from_pretrained",
    "materialize",
    "push_to_hub",
    # exports
    "export",
    # transformers integration
    "QFAHfQuantizer",
]
