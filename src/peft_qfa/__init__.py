"""peft-qfa: fine-tune a quantized LLM once, deploy it at any bit budget (LLM-QFA).

``import peft_qfa`` registers the ``"qfa"`` transformers quantization method and the ``QFA``
PEFT tuner type; load and save supernets only after importing it.
"""

__version__ = "0.1.0"

# --- search and deploy: budgets, subnet search, materialization, the Hub (issue 6) ---
from .deploy import HubPushError, QFAPackedLinear, from_pretrained, materialize, push_to_hub, save_supernet
from .search import SearchResult, plot_pareto, search_subnet

# --- supernet (issue 3): layers, spaces, subnets and the "qfa" transformers quantization method;
# importing registers it ---
from .supernet.config import QFAQuantizationConfig
from .supernet.integrity import allow_other_supernet
from .supernet.layer import QFALinear
from .supernet.quantizer import QFAHfQuantizer
from .supernet.space import SearchSpace, Subnet
from .supernet.subnet import get_subnet, search_space, set_subnet, use_subnet

# --- train: subnet samplers and the Trainer callback (issue 5) ---
from .train import (
    FixedSampler,
    QFASamplerCallback,
    ResourceBalancedSampler,
    SandwichSampler,
    SubnetSampler,
    UniformSampler,
    build_sampler,
    register_sampler,
)

# --- tuner: the "qfa" PEFT method, per-bit-width adapters (issue 4); importing registers it ---
from .tuner import QFAConfig, QFAModel, merge_into_quantized, merged_quantized_weights

__all__ = [
    # search and deploy (issue 6)
    "HubPushError",
    "QFAPackedLinear",
    "SearchResult",
    "from_pretrained",
    "materialize",
    "plot_pareto",
    "push_to_hub",
    "save_supernet",
    "search_subnet",
    # train (issue 5)
    "FixedSampler",
    "QFASamplerCallback",
    "ResourceBalancedSampler",
    "SandwichSampler",
    "SubnetSampler",
    "UniformSampler",
    "build_sampler",
    "register_sampler",
    # tuner (issue 4)
    "QFAConfig",
    "QFAModel",
    "merge_into_quantized",
    "merged_quantized_weights",
    # supernet (issue 3)
    "QFAHfQuantizer",
    "QFAQuantizationConfig",
    "QFALinear",
    "SearchSpace",
    "Subnet",
    "allow_other_supernet",
    "get_subnet",
    "search_space",
    "set_subnet",
    "use_subnet",
]
