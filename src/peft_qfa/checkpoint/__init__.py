"""Saving and loading a supernet folder (supernet + adapters + search data), below train/ and deploy/."""

from .search_data import (
    SEARCH_DATA_NAME,
    find_search_data,
    has_saved_search_data,
    save_search_data,
    search_token_ids,
)
from .supernet import (
    ADAPTER_CONFIG_NAME,
    checkpoint_folder,
    has_adapter_files,
    has_qfa_adapters,
    point_adapters_at,
    save_supernet,
)

__all__ = [
    "ADAPTER_CONFIG_NAME",
    "SEARCH_DATA_NAME",
    "checkpoint_folder",
    "find_search_data",
    "has_adapter_files",
    "has_qfa_adapters",
    "has_saved_search_data",
    "point_adapters_at",
    "save_search_data",
    "save_supernet",
    "search_token_ids",
]
