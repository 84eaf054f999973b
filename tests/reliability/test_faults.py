"""Kills during saves and checkpoint writes leave the old folder or the new one, complete; the swap window.

The kill test runs ``fault_worker.py`` in a subprocess (imports once, forks a child per kill): 16
kills of ``save_supernet`` and 8 of a Trainer writing a checkpoint every step, at delays drawn from
a seeded RNG; half of them are timed from the moment a write is seen in progress, so that the test
exercises interrupted writes even on a busy machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from peft_qfa.atomic import atomic_folder, recover_folder
from peft_qfa.validate import model_source

WORKER = Path(__file__).with_name("fault_worker.py")
SAVE_KILLS, CHECKPOINT_KILLS = 16, 8


@pytest.fixture(scope="module")
def fault_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(WORKER), str(root), str(SAVE_KILLS), str(CHECKPOINT_KILLS), "0"],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("FAULT-REPORT "))
    return json.loads(line.removeprefix("FAULT-REPORT "))


def test_a_killed_save_supernet_leaves_the_old_or_the_new_folder_and_it_loads(fault_report):
    rounds = fault_report["saves"]
    assert len(rounds) == SAVE_KILLS
    assert all(r["killed"] for r in rounds)  # the child saves in a loop: every kill lands in a save
    for r in rounds:
        assert r["state"] in ("a", "b"), r  # file for file the old state or the new one
        assert r["loaded"], r
        assert r["strays"] == [], r  # no staging or old folder left beside the target
    # at least half the kills hit a half-written staging folder, which recovery removed
    assert sum(any(".tmp-" in name for name in r["siblings_at_kill"]) for r in rounds) >= SAVE_KILLS // 2


def test_a_killed_checkpoint_write_is_skipped_and_the_chosen_one_loads(fault_report):
    rounds = fault_report["checkpoints"]
    assert len(rounds) == CHECKPOINT_KILLS
    for r in rounds:
        complete = {f["name"] for f in r["folders"] if f["incomplete"] is None}
        assert all(f["loads"] for f in r["folders"] if f["incomplete"] is None), r
        if r["chosen"] is not None:
            assert r["chosen"] in complete, r
        assert all(line.startswith("skipped checkpoint-") for line in r["skipped"]), r
    # the kills timed to a checkpoint folder without its trainer_state.json left an incomplete one behind, and
    # `--resume auto` chose the intact one before it (the kill of the issue: an empty newest checkpoint)
    timed = [r for r in rounds if r["timed_to_a_write"]]
    assert sum(bool(r["skipped"]) and r["chosen"] is not None for r in timed) >= len(timed) // 2


def _folder(path: Path, **files: str) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_a_kill_between_the_two_renames_is_recovered_to_the_old_folder(tmp_path):
    # the moment after `target -> target.old-X` and before `target.tmp-X -> target`
    _folder(tmp_path / "model.old-1234", **{"config.json": "{}", "weights.bin": "old"})
    _folder(tmp_path / "model.tmp-1234", **{"config.json": "{}", "weights.bin": "new"})
    assert not (tmp_path / "model").exists()
    assert model_source("--model", str(tmp_path / "model"), needs="") == str(tmp_path / "model")  # loaders recover
    assert (tmp_path / "model" / "weights.bin").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the stale staging folder is gone


def test_the_next_save_recovers_first_and_cleans_stale_siblings(tmp_path):
    _folder(tmp_path / "out.old-aaaa", **{"a.txt": "old"})
    _folder(tmp_path / "out.tmp-bbbb", **{"a.txt": "half"})
    with atomic_folder(tmp_path / "out") as staging:
        (staging / "b.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # a file the new save did not write is carried over (a tokenizer saved earlier), the new one is there
    assert (tmp_path / "out" / "a.txt").read_text() == "old" and (tmp_path / "out" / "b.txt").read_text() == "new"


def test_a_failed_save_leaves_the_target_untouched(tmp_path):
    target = _folder(tmp_path / "out", **{"model.safetensors": "old"})
    _folder(target / "checkpoints" / "checkpoint-1", **{"trainer_state.json": "{}"})
    with pytest.raises(RuntimeError, match="boom"), atomic_folder(target) as staging:
        (staging / "model.safetensors").write_text("half")
        raise RuntimeError("boom")
    assert (target / "model.safetensors").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_folder(target) as staging:
        (staging / "model.safetensors").write_text("new")
    assert (target / "model.safetensors").read_text() == "new"
    assert (target / "checkpoints" / "checkpoint-1" / "trainer_state.json").is_file()  # subfolders carried over


def test_recover_folder_leaves_a_complete_target_alone(tmp_path):
    _folder(tmp_path / "x", **{"a": "1"})
    assert recover_folder(tmp_path / "x") is None
    assert (tmp_path / "x" / "a").read_text() == "1"
