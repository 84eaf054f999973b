"""Hub round-trips against the project's loopback Hub: push -> fresh from_pretrained(repo_id), failures, cards.

The client runs in a subprocess (``hub_client.py``) because ``huggingface_hub`` fixes its endpoint
and offline mode at import time, which this test process did long ago.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import peft_qfa
from peft_qfa.testing import char_tokenizer

from .deploy_helpers import with_adapters
from .loopback_hub import LoopbackHub


@pytest.fixture(scope="module")
def hub():
    with LoopbackHub() as server:
        yield server


@pytest.fixture(scope="module")
def round_trip(hub, supernet_dirs, adapter_folder, search_ids, tmp_path_factory):
    root = tmp_path_factory.mktemp("hub_client")
    model = with_adapters(supernet_dirs["llama"])
    space = peft_qfa.search_space(model)
    peft_qfa.materialize(
        model, space.subnet({space.group_names[0]: 2, space.group_names[1]: 4})
    ).save_pretrained(root / "materialized")
    char_tokenizer().save_pretrained(root / "materialized")  # `peft-qfa push` takes it along
    spec = {
        "endpoint": hub.url,
        "materialized": str(root / "materialized"),
        "supernet": str(adapter_folder),
        "search_ids": search_ids.tolist(),
        "prompt": [5, 17, 42, 99, 7],
    }
    (root / "spec.json").write_text(json.dumps(spec))
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": "hf_loopback_token",
        "HF_HOME": str(root / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",  # see conftest.one_torch_thread
        "PYTHONPATH": os.pathsep.join(
            [str(Path(peft_qfa.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("hub_client.py")), str(root / "spec.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise AssertionError(f"hub client failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_push_and_pull_a_materialized_subnet(hub, round_trip):
    report = round_trip["materialized"]
    assert report["pulled"] == report["local"] and len(report["local"]) == 5 + 12
    assert report["pulled_layer_type"] == "QFAPackedLinear"
    files = hub.files("loopback-user/tiny-qfa-subnet")
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert "pareto.png" not in files  # an explicit subnet: no search, no Pareto plot
    card = files["README.md"].decode()
    for group, bits in report["pulled_bits"].items():
        assert f"| `{group}` | {bits} |" in card
    assert report["commit_url"].endswith(hub.commits("loopback-user/tiny-qfa-subnet")[-1])


def test_push_a_supernet_then_load_it_with_a_budget(hub, round_trip):
    report = round_trip["supernet"]
    files = hub.files("loopback-user/tiny-qfa-supernet")
    assert {
        "config.json",
        "model.safetensors",
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
    } <= set(files)
    assert "| candidate bit-widths | 2/3/4 |" in files["README.md"].decode()
    assert report["hub_bits"] == report["disk_bits"]
    assert report["hub"] == report["disk"]
    assert "qfa_search_data.safetensors" in files  # pushed along: a budget alone deploys the repo
    assert report["budget_only_bits"] == report["hub_bits"] and report["budget_only"] == report["hub"]


def test_a_failed_push_is_a_clear_error_and_a_retry_works(hub, round_trip):
    report = round_trip["failure"]
    assert report["error"] is not None
    assert (
        "push_to_hub: uploading the QFA materialized subnet to `loopback-user/tiny-qfa-retry` failed"
        in report["error"]
    )
    assert "500" in report["error"] and "retry the push" in report["error"]
    assert report["folder_intact"] and report["local_model_still_works"]
    assert report["retried"] == round_trip["materialized"]["local"]
    assert len(hub.commits("loopback-user/tiny-qfa-retry")) == 1  # the failed commits left nothing behind
    assert (
        len(hub.commits("loopback-user/tiny-qfa-absorbed")) == 1
    )  # one 500, retried by the client: one commit
    assert hub.failed_commits == 1 + 6


def test_push_from_the_command_line(hub, round_trip):
    assert round_trip["cli"]["status"] == 0
    assert round_trip["cli"]["pulled"] == round_trip["materialized"]["local"]
    files = hub.files("loopback-user/tiny-qfa-cli")
    assert "README.md" in files and "tokenizer.json" in files
    card = files["README.md"].decode() if isinstance(files, dict) else ""
    assert "/tmp" not in card and "base_model: /" not in card  # never a local path
