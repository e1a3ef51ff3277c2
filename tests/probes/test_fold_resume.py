"""A probe killed mid-run keeps its finished folds: the same command resumes after them,
and the results equal those of a run that never stopped."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from codeprop import main
from codeprop.recipes import workdir
from codeprop.train import classifier

from conftest import REPO

GIN = str(REPO / "gin/experiments/devmap_amd_decoder_tiny.gin")


def _bindings(raw_dir) -> list[str]:
    return [
        "EPOCHS = 2",
        "MAX_TOKENS = 64",
        "BATCH_SIZE = 32",
        "decoder.DecoderConfig.num_layers = 1",
        "decoder.DecoderConfig.embed_dim = 32",
        "llm_probe.run_llm_probe.max_folds = 4",
        f"llm_probe.run_llm_probe.raw_dir = '{raw_dir}'",
    ]


def _without_seconds(tree):
    """The results without wall-clock times (every ``seconds`` field, at any depth)."""
    if isinstance(tree, dict):
        return {k: _without_seconds(v) for k, v in tree.items() if k != "seconds"}
    if isinstance(tree, list):
        return [_without_seconds(v) for v in tree]
    return tree


def test_a_killed_probe_resumes_after_its_finished_folds(raw_dir, tmp_path, monkeypatch):
    # Three epochs a fold, the training state saved after each.
    bindings = [*_bindings(raw_dir), "EPOCHS = 3", "llm_probe.run_llm_probe.checkpoint_every = 0"]
    whole = main.run([GIN], bindings, str(tmp_path / "whole"))
    assert not list((tmp_path / "whole" / "folds").glob("*.training"))  # removed when done

    # The same run in a child process, killed (SIGKILL) in the second fold, after its
    # training state was first saved (between two calls of steps inside epoch 1: 18 steps
    # an epoch, 16 a call).
    workdir = tmp_path / "killed"
    command = [sys.executable, "-m", "codeprop.main", f"--workdir={workdir}", f"--gin_file={GIN}"]
    command += [f"--gin_bindings={b}" for b in bindings]
    child = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    in_second = workdir / "folds" / "fold_001.training" / "checkpoints"

    def steps_saved() -> list[int]:  # finished saves are named by their step
        return [int(p.name) for p in in_second.glob("*") if p.name.isdigit()]

    deadline = time.monotonic() + 600
    while not steps_saved() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    saved = sorted(p.name for p in (workdir / "folds").glob("fold_*.json"))
    assert "fold_000.json" in saved and not (workdir / "results.json").exists()
    progress = json.loads(
        (in_second / str(max(steps_saved())) / "progress" / "metadata").read_text()
    )
    epochs_saved = progress["epoch"]  # whole epochs; "partial": the calls of the next
    assert 0 <= epochs_saved < 3 and "fold_001.json" not in saved

    calls, epochs = [], []
    fit, train_epoch = classifier.fit, classifier.train_epoch
    monkeypatch.setattr(classifier, "fit", lambda *a, **k: calls.append(1) or fit(*a, **k))
    monkeypatch.setattr(
        classifier, "train_epoch", lambda *a, **k: epochs.append(1) or train_epoch(*a, **k)
    )
    resumed = main.run([GIN], bindings, str(workdir))
    assert len(calls) == 4 - len(saved)  # only the folds that were not finished
    assert len(epochs) == 3 * (4 - len(saved)) - epochs_saved  # fold 2 from where it was saved
    assert _without_seconds(json.loads(json.dumps(resumed, default=float))) == _without_seconds(
        json.loads(json.dumps(whole, default=float))
    )
    with (
        np.load(tmp_path / "whole" / "embeddings.npz") as a,
        np.load(workdir / "embeddings.npz") as b,
    ):
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_folds_of_other_settings_are_not_reused(raw_dir, tmp_path, monkeypatch):
    bindings = [*_bindings(raw_dir)[:-2], "llm_probe.run_llm_probe.max_folds = 1",
                _bindings(raw_dir)[-1]]  # fmt: skip
    main.run([GIN], bindings, str(tmp_path))
    calls = []
    fit = classifier.fit
    monkeypatch.setattr(classifier, "fit", lambda *a, **k: calls.append(1) or fit(*a, **k))
    # Another experiment in this workdir: refused, then allowed (folds/ stays: its
    # entries are keyed by their settings).
    with pytest.raises(workdir.WorkdirError, match=r"\+ LEARNING_RATE = 0.003"):
        main.run([GIN], [*bindings, "LEARNING_RATE = 0.003"], str(tmp_path))
    assert calls == []
    main.run([GIN], [*bindings, "LEARNING_RATE = 0.003"], str(tmp_path), overwrite=True)
    assert len(calls) == 1  # another learning rate: the fold is trained again
    main.run([GIN], [*bindings, "LEARNING_RATE = 0.003"], str(tmp_path))
    assert len(calls) == 1  # and now read back
    (tmp_path / "folds" / "fold_000.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=r"fold_000.json: a saved fold that cannot be read"):
        main.run([GIN], [*bindings, "LEARNING_RATE = 0.003"], str(tmp_path))


def test_sigterm_stops_after_the_epoch_and_the_run_resumes(raw_dir, tmp_path, monkeypatch):
    bindings = [*_bindings(raw_dir), "EPOCHS = 6"]
    command = [sys.executable, "-m", "codeprop.main", f"--workdir={tmp_path}", f"--gin_file={GIN}"]
    command += [f"--gin_bindings={b}" for b in bindings]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    first = tmp_path / "folds" / "fold_000.json"
    deadline = time.monotonic() + 600
    while not first.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=300)
    assert child.returncode == 0, out
    assert "SIGTERM: stopped in fold" in out and '"preempted": true' in out
    assert not (tmp_path / "results.json").exists()
    assert not (tmp_path / "operative_config.gin").exists()  # not marked finished
    saved = len(list((tmp_path / "folds").glob("fold_*.json")))
    assert 1 <= saved < 4
    calls = []
    fit = classifier.fit
    monkeypatch.setattr(classifier, "fit", lambda *a, **k: calls.append(1) or fit(*a, **k))
    resumed = main.run([GIN], bindings, str(tmp_path))
    assert len(calls) == 4 - saved and len(resumed["folds"]) == 4
