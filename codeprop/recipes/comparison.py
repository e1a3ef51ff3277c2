r"""The comparison in one command: run (or reuse) every arm, then write the report.

`run_comparison` is what ``gin/experiments/compare_*.gin`` bind:

    python -m codeprop.main --gin_file=gin/experiments/compare_devmap_amd.gin \
        --workdir=workdir/compare_devmap_amd

Each arm is a probe experiment given as gin files and bindings (the same ones
``python -m codeprop.main`` takes alone). Its workdir is ``<workdir>/arms/<slug>``. An
arm is reused when that workdir holds a finished run (``operative_config.gin``,
``results.json``, ``embeddings.npz``) of exactly the config the arm now parses to: the
full config, every binding (a superset of the operative config that the run wrote, so a
change to any binding reruns it). Otherwise the arm runs, in a child process
(``python -m codeprop.main``, output passed through with the arm's name in front). The
code's version is not part of the key: after changing codeprop, set ``rerun = True``.

Then `codeprop.analysis.comparison` measures the arms and ``<workdir>/report/`` gets
``report.md``, ``report.json`` and the figures (`codeprop.analysis.comparison_figures`).
An arm that failed or cannot be compared is left out of the report with its reason.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import time

from codeprop.analysis import comparison as comparison_lib
from codeprop.analysis import comparison_figures

FINISHED = ("operative_config.gin", "results.json", "embeddings.npz")


def slug(name: str) -> str:
    """A directory name for an arm: lower case, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def split_spec(spec: list[str]) -> tuple[list[str], list[str]]:
    """(gin files, bindings) of an arm: items ending in ``.gin`` are files."""
    files = [s for s in spec if s.endswith(".gin")]
    return files, [s for s in spec if not s.endswith(".gin")]


def parse_configs(specs: list[tuple[list[str], list[str]]]) -> list[str]:
    """The full gin config each (files, bindings) parses to (``gin.config_str()``, as
    ``config.gin`` records it); run in a child process: parsing clears gin's state."""
    import gin

    configs = []
    for files, bindings in specs:
        gin.clear_config(clear_constants=True)
        gin.add_config_file_search_path(".")
        gin.parse_config_files_and_bindings(files, bindings, finalize_config=False)
        configs.append(gin.config_str())
    return configs


def _configs_in_child(specs: list[tuple[list[str], list[str]]]) -> list[str]:
    code = (
        "import json, sys; from codeprop.recipes import comparison; "
        "json.dump(comparison.parse_configs(json.load(sys.stdin)), sys.stdout)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(specs),
        capture_output=True,
        text=True,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if out.returncode != 0:
        raise ValueError(f"the arms' gin files do not parse:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def is_finished(arm_dir: pathlib.Path, config: str) -> str | None:
    """Why the run in `arm_dir` cannot be reused for `config`, or None when it can."""
    missing = [name for name in FINISHED if not (arm_dir / name).is_file()]
    if not (arm_dir / "config.gin").is_file():
        return "no run yet"
    if missing:
        return f"the last run did not finish (no {', '.join(missing)})"
    if (arm_dir / "config.gin").read_text() != config:
        return "its config changed"
    return None


def run_arm(name: str, arm_dir: pathlib.Path, files: list[str], bindings: list[str]) -> int:
    """Runs one arm's experiment in a child process; its output lines get the arm's name
    in front. Returns the exit status."""
    command = [sys.executable, "-m", "codeprop.main", f"--workdir={arm_dir}"]
    command += [f"--gin_file={f}" for f in files] + [f"--gin_bindings={b}" for b in bindings]
    arm_dir.mkdir(parents=True, exist_ok=True)
    with open(arm_dir / "log.txt", "w") as log:
        child = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        for line in child.stdout:
            log.write(line)
            print(f"[{name}] {line}", end="", flush=True)
        return child.wait()


def run_comparison(
    *,
    workdir: str | os.PathLike,
    benchmark: str,
    protocol: str,
    arms: dict[str, list[str]],
    bindings: list[str] = (),
    split_seed: int = 204,
    metric: str = "euclidean",
    tsne_classes: int = 5,
    seed: int = 0,
    rerun: bool = False,
    run: bool = True,
) -> dict:
    """Runs or reuses every arm, then writes ``<workdir>/report/``.

    Args:
      workdir: output directory; arms go to ``arms/<slug>``, the report to ``report/``.
      benchmark, protocol, split_seed: what every arm runs on (checked on its embeddings).
      arms: name -> gin files and bindings of the arm's experiment.
      bindings: added after every arm's own (e.g. ``EPOCHS = 2``, ``MAX_FOLDS = 2``).
      metric: of the silhouette, ``euclidean`` (the paper's) or ``cosine``.
      tsne_classes: classes drawn in the t-SNE maps of a benchmark with more.
      seed: of the t-SNE maps and the choice of their classes.
      rerun: run every arm even when a finished run of its config is there.
      run: False only reports the finished arms (the others are left out).

    Returns:
      The comparison (`codeprop.analysis.comparison.as_json`) with ``arm_runs`` (what
      happened to each arm) and ``report_dir``.
    """
    workdir = pathlib.Path(workdir).resolve()
    specs = {name: split_spec(list(spec)) for name, spec in arms.items()}
    specs = {name: (files, [*own, *bindings]) for name, (files, own) in specs.items()}
    configs = dict(zip(specs, _configs_in_child(list(specs.values())), strict=True))
    arm_dirs, arm_runs = {}, {}
    for name, (files, arm_bindings) in specs.items():
        arm_dir = workdir / "arms" / slug(name)
        arm_dirs[name] = arm_dir
        why = "rerun asked for" if rerun else is_finished(arm_dir, configs[name])
        if why is None:
            arm_runs[name] = "reused a finished run of the same config"
            print(f"[{name}] reusing {arm_dir} (same config, finished)", flush=True)
            continue
        if not run:
            arm_runs[name] = f"not run ({why})"
            continue
        print(f"[{name}] running ({why}) in {arm_dir}", flush=True)
        start = time.perf_counter()
        status = run_arm(name, arm_dir, files, arm_bindings)
        seconds = time.perf_counter() - start
        arm_runs[name] = (
            f"ran in {seconds:.0f} s"
            if status == 0
            else f"failed (exit status {status}; see {arm_dir / 'log.txt'})"
        )
    start = time.perf_counter()
    result = comparison_lib.compare(
        arm_dirs, benchmark, protocol, split_seed, metric, tsne_classes, seed
    )
    for name, state in arm_runs.items():
        if name in result["left_out"] and not state.startswith(("ran", "reused")):
            result["left_out"][name] = f"{state}; {result['left_out'][name]}"
    report_dir = workdir / "report"
    figures = comparison_figures.write_figures(result, report_dir)
    (report_dir / "report.md").write_text(comparison_lib.markdown(result, figures))
    out = comparison_lib.as_json(result) | {
        "arm_runs": arm_runs,
        "report_dir": str(report_dir),
        "report_seconds": round(time.perf_counter() - start, 1),
    }
    (report_dir / "report.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    return out
