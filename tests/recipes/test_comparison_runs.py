"""The comparison command: arms run in child processes, reused when finished with the same
config, rerun when it changed, left out (with the reason) when they fail."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from codeprop import main
from codeprop.recipes import arms, comparison, config_checks

from conftest import run_side_by_side

FEATURES = ["gin/runs/features_probe.gin", "BENCHMARK = 'devmap/amd'", "PROTOCOL = 'kfold'"]
ARMS = {
    "bag of AST node types": FEATURES,
    "bag of bytes": [*FEATURES, "features_probe.run_features_probe.features = 'tokens'"],
    "CodeShell (no checkpoint)": [
        "gin/experiments/devmap_amd_codeshell_demo.gin",
        "CHECKPOINT = '/nonexistent/checkpoint'",
    ],
}


def _compare(workdir, arms=ARMS, **kwargs):
    return comparison.run_comparison(
        workdir=workdir,
        benchmark="devmap/amd",
        protocol="kfold",
        arms=arms,
        bindings=["MAX_FOLDS = 2"],
        **kwargs,
    )


def test_run_reuse_and_rerun(in_repo, tmp_path, capsys):
    first = _compare(tmp_path, parallel=2)  # two arms at a time, each its own process
    runs = first["arm_runs"]
    assert runs["bag of AST node types"].startswith("ran in")
    assert runs["CodeShell (no checkpoint)"].startswith("failed (exit status 1")
    assert [a["name"] for a in first["arms"]] == ["bag of AST node types", "bag of bytes"]
    reason = first["left_out"]["CodeShell (no checkpoint)"]
    assert "log.txt" in reason and "results.json: missing" in reason
    log = (tmp_path / "arms" / "codeshell_no_checkpoint" / "log.txt").read_text()
    assert "/nonexistent/checkpoint" in log
    record = json.loads((tmp_path / "arms" / "bag_of_bytes" / "run.json").read_text())
    assert record["exit_status"] == 0 and record["command"][:2] == ["-m", "codeprop.main"]
    assert record["code_version"] != "unknown"  # the tests run in a git checkout
    assert "[bag of bytes] fold 2/2" in capsys.readouterr().out
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| bag of bytes | baseline | no |" in report and "## Left out" in report
    assert f"run at code {record['code_version']}, started {record['started']}" in report
    assert json.loads((tmp_path / "report" / "report.json").read_text())["arm_runs"] == runs

    # The same config again: reused, the same numbers.
    second = _compare(tmp_path, run=False)
    assert second["arm_runs"]["bag of bytes"] == "reused a finished run of the same config"
    assert second["arm_runs"]["CodeShell (no checkpoint)"].startswith("not run (the last run")
    assert second["arms"][1]["metrics"] == first["arms"][1]["metrics"]
    assert second["arms"][1]["measurements_reused"] and not first["arms"][1]["measurements_reused"]
    assert "measurements read back" in (tmp_path / "report" / "report.md").read_text()
    # Another comparison pointed at these arms reuses them.
    shared = _compare(tmp_path / "other", run=False, arms_dir=tmp_path / "arms")
    assert shared["arm_runs"]["bag of bytes"] == "reused a finished run of the same config"
    assert shared["arms"][1]["metrics"] == first["arms"][1]["metrics"]
    assert not (tmp_path / "other" / "arms").exists()

    # One binding added to one arm: that arm runs again, the other is reused.
    bags = {name: ARMS[name] for name in ("bag of AST node types", "bag of bytes")}
    shorter = {"bag of bytes": ["features_probe.run_features_probe.regularisations = (0.1,)"]}
    third = _compare(tmp_path, bags, arm_bindings=shorter)
    assert third["arm_runs"]["bag of bytes"].startswith("ran in")
    assert third["arm_runs"]["bag of AST node types"].startswith("reused")
    config = (tmp_path / "arms" / "bag_of_bytes" / "config.gin").read_text()
    assert "regularisations = (0.1,)" in config
    (replaced,) = (tmp_path / "arms" / "bag_of_bytes" / "replaced").iterdir()
    assert "regularisations" not in (replaced / "config.gin").read_text()
    assert (replaced / "results.json").is_file()  # the earlier run's, kept
    with pytest.raises(ValueError, match=r"not in arms: \['bag of graphs'\]"):
        _compare(tmp_path, bags, arm_bindings={"bag of graphs": ["EPOCHS = 1"]})


def test_a_failed_run_is_never_reused(tmp_path):
    (tmp_path / "config.gin").write_text("x = 1\n")
    assert arms.is_finished(tmp_path, "x = 1\n").startswith("the last run did not finish")
    for name in arms.FINISHED:
        (tmp_path / name).write_text("")
    assert arms.is_finished(tmp_path, "x = 1\n") is None
    assert arms.is_finished(tmp_path, "x = 2\n") == "its config changed"


def test_a_run_that_fails_leaves_no_operative_config(in_repo, tmp_path):
    # Bindings of an earlier run in this process must not leak into this one.
    with pytest.raises(ValueError, match="not set"):  # leaves the LLM probe's bindings
        main.run(["gin/runs/llm_probe.gin"], [], str(tmp_path))
    (tmp_path / "operative_config.gin").write_text("from a finished run\n")
    with pytest.raises(ValueError, match="unknown benchmark"):
        main.run(
            ["gin/runs/features_probe.gin"],
            ["BENCHMARK = 'devmap/arm'", "PROTOCOL = 'kfold'"],
            str(tmp_path),
        )
    assert not (tmp_path / "operative_config.gin").exists()
    assert "devmap/arm" in (tmp_path / "config.gin").read_text()


SHARED = r"""
import json, sys
from codeprop.recipes import arms
specs = {"bag of bytes": (["gin/runs/features_probe.gin"], [
    "BENCHMARK = 'devmap/amd'", "PROTOCOL = 'kfold'", "MAX_FOLDS = 2",
    "features_probe.run_features_probe.features = 'tokens'"])}
_, runs = arms.run_or_reuse(__import__("pathlib").Path(sys.argv[1]) / "arms", specs)
print(json.dumps(runs))
"""


def test_two_processes_sharing_a_workdir_run_an_arm_once(in_repo, tmp_path):
    outs = run_side_by_side(SHARED, str(tmp_path))
    states = sorted(json.loads(out.splitlines()[-1])["bag of bytes"] for out in outs)
    assert states[0].startswith("ran in")
    assert states[1] == "reused a finished run of the same config"
    assert sum("finished by another process" in out for out in outs) == 1


def test_a_run_whose_checkpoint_changed_is_not_reused(tmp_path):
    checkpoint = tmp_path / "hf"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights v1")
    config = f"CHECKPOINT = '{checkpoint}'\nTOKENIZER = 'bytes'\n"
    assert arms.input_paths(config) == [str(checkpoint)]  # 'bytes' is no file
    run = tmp_path / "arm"
    run.mkdir()
    for name in (*arms.FINISHED, "config.gin"):
        (run / name).write_text(config if name == "config.gin" else "")
    (run / arms.INPUTS).write_text(json.dumps(arms.input_digests(config)))
    assert arms.is_finished(run, config) is None
    (checkpoint / "model.safetensors").write_bytes(b"weights v2")  # retrained in place
    assert arms.is_finished(run, config) == f"an input changed: {checkpoint}"


def test_an_arm_with_a_macro_that_nothing_uses_is_refused_before_any_arm_runs(in_repo, tmp_path):
    misspelt = {"bag of bytes": [*ARMS["bag of bytes"], "EPOCHZ = 3"]}
    with pytest.raises(ValueError, match=r"defines gin macros that nothing uses.*EPOCHZ"):
        _compare(tmp_path, arms={"bag of AST node types": FEATURES, **misspelt})
    assert not (tmp_path / "arms").exists()


def test_common_macro_bindings_go_to_the_arms_that_use_them(in_repo):
    common = ["MAX_FOLDS = 2", "EPOCHS = 2"]
    specs = {
        "bag of bytes": (["gin/runs/features_probe.gin"], FEATURES[1:]),
        "AST + GCN": (["gin/experiments/devmap_amd_ast_gcn.gin"], []),
    }
    out, configs = comparison._with_common_bindings(specs, common)
    assert "MAX_FOLDS = 2" in configs["bag of bytes"] and "EPOCHS" not in configs["bag of bytes"]
    assert "EPOCHS = 2" in configs["AST + GCN"]
    assert out["bag of bytes"] == (
        ["gin/runs/features_probe.gin"],
        [*FEATURES[1:], "MAX_FOLDS = 2"],
    )
    assert out["AST + GCN"] == (["gin/experiments/devmap_amd_ast_gcn.gin"], common)
    assert config_checks.macro_name("EPOCHS = 2") == "EPOCHS"
    assert config_checks.macro_name("gnn.GCNConfig.hidden_dim = 3") is None
    with pytest.raises(ValueError, match=r"macros that no arm uses \(misspelt\?\): \['EPOCHZ'\]"):
        comparison._with_common_bindings(specs, ["EPOCHZ = 2"])


STOPPING = r"""
import json, pathlib, sys
from codeprop.recipes import arms
gcn = ["gin/experiments/devmap_amd_ast_gcn.gin"]
specs = {
    "AST + GCN (long)": (gcn, ["MAX_FOLDS = 1", "EPOCHS = 1000000"]),
    "AST + GCN (next)": (gcn, ["MAX_FOLDS = 1", "EPOCHS = 1"]),
}
_, runs = arms.run_or_reuse(pathlib.Path(sys.argv[1]), specs)
print(json.dumps(runs))
"""


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_sigterm_to_the_parent_stops_its_running_arm_and_starts_no_other(in_repo, tmp_path):
    # A batch scheduler signals the parent's pid only: the running arm (a child process)
    # must stop with it, not run on as an orphan, and the next arm must not start.
    parent = subprocess.Popen(
        [sys.executable, "-c", STOPPING, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    child = None
    try:
        deadline = time.monotonic() + 300
        # The arm's child writes metrics/ just before its folds start (stoppable then).
        while not (tmp_path / "ast_gcn_long" / "metrics").is_dir():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.2)
        time.sleep(2)
        (child,) = _children_of(parent.pid)
        parent.send_signal(signal.SIGTERM)
        out, _ = parent.communicate(timeout=300)
    finally:
        parent.kill()
        if child is not None and pathlib.Path(f"/proc/{child}").exists():
            os.kill(child, signal.SIGKILL)  # an orphan of a failed test
    assert parent.returncode == 0
    runs = json.loads(out.splitlines()[-1])
    # It stopped at a safe point (its epoch), resumable: not killed.
    assert runs["AST + GCN (long)"].startswith(arms.STOPPED + " (exit status 0)")
    status = json.loads((tmp_path / "ast_gcn_long" / "run_status.json").read_text())
    assert status["state"] == "stopped"
    assert runs["AST + GCN (next)"] == f"not run ({arms.STOPPED} before it started)"
    assert arms.stopped(runs) and not arms.stopped({"a": "ran in 3 s"})
    assert not pathlib.Path(f"/proc/{child}").exists()  # ended, and reaped by the parent
    assert not (tmp_path / "ast_gcn_next" / "log.txt").exists()
    assert arms.is_finished(tmp_path / "ast_gcn_long", "") is not None
