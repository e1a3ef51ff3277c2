"""Workdirs: one run at a time, another experiment's outputs never clobbered, every
run's end recorded (`codeprop.recipes.workdir`, through `codeprop.main.run`)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from codeprop import main
from codeprop.recipes import workdir as workdir_lib

A = "# Parameters for run:\nrun.epochs = 10\nrun.seed = 0\n"
B = "# Parameters for run:\nrun.epochs = 11\nrun.seed = 0\n"


def _finished_run(path, config=A):
    with workdir_lib.claimed(path, config) as claim:
        (path / "results.json").write_text('{"accuracy": 0.9}')
        (path / "folds").mkdir(exist_ok=True)
        (path / "folds" / "fold_000.json").write_text("{}")
        claim.finished("operative\n")


def test_a_finished_run_is_recorded_and_the_same_config_resumes_in_place(tmp_path):
    _finished_run(tmp_path)
    status = workdir_lib.read_status(tmp_path)
    assert status["state"] == "finished" and status["pid"] == os.getpid()
    assert (tmp_path / "config.gin").read_text() == A
    assert (tmp_path / "operative_config.gin").read_text() == "operative\n"
    with workdir_lib.claimed(tmp_path, A) as claim:  # a rerun of the same experiment
        assert workdir_lib.read_status(tmp_path)["state"] == "running"
        assert not (tmp_path / "operative_config.gin").exists()  # not finished yet
        assert (tmp_path / "results.json").exists() and (tmp_path / "folds").is_dir()
        claim.stopped()
    assert workdir_lib.read_status(tmp_path)["state"] == "stopped"
    assert not (tmp_path / "replaced").exists()


def test_another_experiments_outputs_are_refused_with_the_differences(tmp_path):
    _finished_run(tmp_path)

    def files():  # the lock names its holder: not part of the experiment's files
        return {
            p.name: p.read_bytes()
            for p in tmp_path.iterdir()
            if p.is_file() and p.name != workdir_lib.LOCK
        }

    before = files()
    with pytest.raises(workdir_lib.WorkdirError) as error, workdir_lib.claimed(tmp_path, B):
        raise AssertionError("must not run")
    message = str(error.value)
    assert str(tmp_path) in message and "its last run finished" in message
    assert "- run.epochs = 10\n+ run.epochs = 11" in message
    assert "run.seed" not in message and "--overwrite" in message
    assert files() == before  # nothing touched
    assert "arms_dir" not in message
    (tmp_path / "arms").mkdir()  # a sweep's or a comparison's: reusable from elsewhere
    with pytest.raises(workdir_lib.WorkdirError) as error, workdir_lib.claimed(tmp_path, B):
        raise AssertionError("must not run")
    assert f"`sweep.run_sweep.arms_dir = '{tmp_path / 'arms'}'`" in str(error.value)


def test_overwrite_moves_the_other_experiment_aside_and_keeps_the_shared_caches(tmp_path):
    _finished_run(tmp_path)
    (tmp_path / "log.txt").write_text("the launcher's log of this run\n")
    old_status = workdir_lib.read_status(tmp_path)
    with workdir_lib.claimed(tmp_path, B, overwrite=True) as claim:
        claim.finished("operative B\n")
    (moved,) = (tmp_path / "replaced").iterdir()
    assert sorted(p.name for p in moved.iterdir()) == [
        "config.gin",
        "operative_config.gin",
        "results.json",
        "run_status.json",
    ]
    assert (moved / "config.gin").read_text() == A
    assert json.loads((moved / "run_status.json").read_text()) == old_status
    assert (tmp_path / "config.gin").read_text() == B
    assert not (tmp_path / "results.json").exists()
    assert (tmp_path / "folds" / "fold_000.json").exists()  # keyed by their own config
    assert (tmp_path / "log.txt").exists()
    assert workdir_lib.read_status(tmp_path)["replaced"] == str(moved)


def test_a_failed_run_is_marked_failed_with_its_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), workdir_lib.claimed(tmp_path, A):
        raise RuntimeError("boom")
    status = workdir_lib.read_status(tmp_path)
    assert status["state"] == "failed" and status["error"] == "RuntimeError: boom"
    assert not (tmp_path / "operative_config.gin").exists()
    # It wrote nothing else, so a corrected config may run there.
    with workdir_lib.claimed(tmp_path, B) as claim:
        claim.finished("")
    assert (tmp_path / "config.gin").read_text() == B


HOLDER = """
import sys, time
from codeprop.recipes import workdir
with workdir.claimed(sys.argv[1], "run.epochs = 10\\n") as claim:
    open(sys.argv[1] + "/results.json", "w").write("{}")
    print("claimed", flush=True)
    time.sleep(600)
"""


def test_a_second_run_at_once_is_refused_naming_the_first(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with (
            pytest.raises(
                workdir_lib.WorkdirBusy, match=f"in use by another run \\(pid {holder.pid} "
            ),
            workdir_lib.claimed(tmp_path, "run.epochs = 10\n"),
        ):
            raise AssertionError("must not run")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # Killed: the lock is free again, and its status says it never ended.
    assert workdir_lib.read_status(tmp_path)["state"] == "running"
    with (
        pytest.raises(workdir_lib.WorkdirError, match="died without a word"),
        workdir_lib.claimed(tmp_path, B),
    ):
        pass
    with workdir_lib.claimed(tmp_path, "run.epochs = 10\n") as claim:  # its own command
        claim.finished("")


def test_an_unreadable_status_is_an_error_naming_it(tmp_path):
    (tmp_path / "run_status.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(workdir_lib.WorkdirError, match="run_status.json: not a run status"):
        workdir_lib.read_status(tmp_path)


def test_main_refuses_a_workdir_of_another_experiment(in_repo, tmp_path):
    base = [
        "BENCHMARK = 'devmap/amd'",
        "PROTOCOL = 'kfold'",
        "MAX_FOLDS = 1",
        "features_probe.run_features_probe.features = 'tokens'",
    ]
    start = time.perf_counter()
    first = main.run(["gin/runs/features_probe.gin"], base, str(tmp_path))
    assert first["num_folds_run"] == 1, time.perf_counter() - start
    results = (tmp_path / "results.json").read_bytes()
    other = [*base, "features_probe.run_features_probe.regularisations = (0.1,)"]
    with pytest.raises(workdir_lib.WorkdirError, match=r"\+ .*regularisations = \(0.1,\)"):
        main.run(["gin/runs/features_probe.gin"], other, str(tmp_path))
    assert (tmp_path / "results.json").read_bytes() == results
    assert (tmp_path / "operative_config.gin").exists()
    main.run(["gin/runs/features_probe.gin"], other, str(tmp_path), overwrite=True)
    assert "(0.1,)" in (tmp_path / "config.gin").read_text()
    assert workdir_lib.read_status(tmp_path)["state"] == "finished"
    (moved,) = (tmp_path / "replaced").iterdir()
    assert (moved / "results.json").read_bytes() == results


def test_a_report_of_the_finished_arms_is_the_same_comparison(tmp_path):
    full = "comparison.run_comparison.arms = {'a': ['x.gin']}\n"
    with workdir_lib.claimed(tmp_path, full) as claim:
        (tmp_path / "report").mkdir()
        claim.finished("")
    report_only = full + "comparison.run_comparison.run = False\n"
    with workdir_lib.claimed(tmp_path, report_only) as claim:
        claim.finished("")
    assert not (tmp_path / "replaced").exists()
    assert workdir_lib.config_differences(full, report_only) == []
    more = full.replace("['x.gin']", "['x.gin', 'y.gin']")
    assert workdir_lib.config_differences(report_only, more) == [
        "- comparison.run_comparison.arms = {'a': ['x.gin']}",
        "+ comparison.run_comparison.arms = {'a': ['x.gin', 'y.gin']}",
    ]


def test_the_pretraining_demo_tool_claims_its_workdir_too(tmp_path):
    (tmp_path / "config.gin").write_text("pretrain_demo.steps = 5\n")
    (tmp_path / "report.md").write_text("another demo's report\n")
    with pytest.raises(workdir_lib.WorkdirError, match=r"\+ pretrain_demo.steps = 3"):
        main.pretrain_demo_main(["--workdir", str(tmp_path), "--steps", "3"])
    assert (tmp_path / "report.md").read_text() == "another demo's report\n"
