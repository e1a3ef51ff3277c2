r"""Grid search as the paper did it (learning rate, hidden and embedding sizes), chosen on
validation data only.

`run_sweep` is what ``gin/experiments/sweep_*.gin`` bind:

    python -m codeprop.main --gin_file=gin/experiments/sweep_devmap_amd_ast_gcn.gin \
        --workdir=workdir/sweep_devmap_amd_ast_gcn

Every point of the grid is the base experiment with one binding per axis, run (or reused,
`codeprop.recipes.arms`) under the experiment's own protocol. A point is scored by its
validation accuracy: per fold, that of the epoch the fold selected, then the mean over
folds. The best point (the first of a tie, in grid order) is the sweep's choice. The
report (``<workdir>/sweep.md``, ``sweep.json``) shows every point's validation accuracy
and the test accuracy of the chosen point only: test folds never take part in the choice,
and the other points' test accuracies are not shown.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib

import numpy as np

from codeprop.data import json_files
from codeprop.recipes import arms as arms_lib
from codeprop.recipes import workdir as workdir_lib


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Every combination of the axes' values, the first axis slowest."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def point_name(point: dict) -> str:
    """``LEARNING_RATE=0.01, hidden_dim=32``: each axis by its last dotted part."""
    return ", ".join(f"{name.rsplit('.', 1)[-1]}={value}" for name, value in point.items())


def validation_score(results: dict) -> float:
    """Mean over folds of the validation accuracy of each fold's selected epoch."""
    return float(np.mean([f["best_validation_accuracy"] for f in results["folds"]]))


def choose(points: list[dict]) -> dict:
    """The point with the best ``validation_accuracy``, the first of a tie in grid order.
    Means of the same fold accuracies summed in another order differ in their last bits,
    so scores are compared to 12 decimals."""
    return max(points, key=lambda p: round(p["validation_accuracy"], 12))


def run_sweep(
    *,
    workdir: str | os.PathLike,
    base: list[str],
    grid: dict[str, list],
    bindings: list[str] = (),
    rerun: bool = False,
    run: bool = True,
    parallel: int = 1,
    arms_dir: str | os.PathLike | None = None,
) -> dict:
    """Runs (or reuses) every point of the grid and chooses one on validation accuracy.

    Args:
      workdir: output directory; points go to ``arms/<slug>``.
      base: gin files and bindings of the experiment swept.
      grid: gin binding name (a macro such as ``LEARNING_RATE`` or a parameter such as
        ``gnn.GCNConfig.hidden_dim``) -> the values tried.
      bindings: added after every point's own (e.g. ``MAX_FOLDS = 2``).
      rerun, run, parallel: as in `codeprop.recipes.arms.run_or_reuse`.
      arms_dir: where the points run and are reused (default ``<workdir>/arms``); a
        comparison's arms directory shares the points that are its arms.

    Returns:
      ``points`` (per point: ``name``, ``bindings``, ``validation_accuracy`` or the
      reason it has none), ``chosen`` (name, bindings, validation accuracy and its test
      accuracy), ``arm_runs``, ``left_out`` and ``report`` (the path of sweep.md); or,
      when SIGTERM stopped it, ``{"preempted": True, "arm_runs"}`` (nothing chosen).
    """
    workdir = pathlib.Path(workdir).resolve()
    files, base_bindings = arms_lib.split_spec(list(base))
    points = grid_points(grid)
    specs = {}
    for point in points:
        own = [f"{name} = {value!r}" for name, value in point.items()]
        specs[point_name(point)] = (files, [*base_bindings, *own, *bindings])
    arm_dirs, arm_runs = arms_lib.run_or_reuse(
        pathlib.Path(arms_dir) if arms_dir else workdir / "arms", specs, rerun, run, parallel
    )
    if arms_lib.stopped(arm_runs):  # SIGTERM: no report from a part of the arms
        return {"preempted": True, "arm_runs": arm_runs}
    rows, left_out, finished = [], {}, {}
    for name, (_, point_bindings) in specs.items():
        path = arm_dirs[name] / "results.json"
        row = {"name": name, "bindings": point_bindings[len(base_bindings) :]}
        if arm_runs[name].startswith(("ran", "reused")) and path.is_file():
            finished[name] = json_files.read_object(path, workdir_lib.WorkdirError)
            row["validation_accuracy"] = validation_score(finished[name])
        else:
            left_out[name] = arm_runs[name]
        rows.append(row)
    scored = [r for r in rows if "validation_accuracy" in r]
    chosen = None
    if scored:
        best = choose(scored)
        results = finished[best["name"]]
        chosen = best | {
            "test_accuracy": results["aggregate"]["accuracy"]["mean"],
            "test_accuracy_std": results["aggregate"]["accuracy"]["std"],
            "workdir": str(arm_dirs[best["name"]]),
        }
    out = {
        "base": list(base),
        "grid": grid,
        "points": rows,
        "chosen": chosen,
        "arm_runs": arm_runs,
        "left_out": left_out,
        "report": str(workdir / "sweep.md"),
    }
    (workdir / "sweep.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    (workdir / "sweep.md").write_text(markdown(out))
    return out


def markdown(sweep: dict) -> str:
    """The sweep table: every point's validation accuracy; the chosen point's test one."""
    lines = [
        f"# Sweep of {' '.join(sweep['base'])}",
        "",
        "Chosen on validation accuracy (per fold, that of its selected epoch; mean over "
        "folds); the test accuracy is shown for the chosen point only.",
        "",
        "| point | validation accuracy (%) | chosen |",
        "|---|---|---|",
    ]
    chosen = sweep["chosen"]["name"] if sweep["chosen"] else None
    for row in sweep["points"]:
        value = row.get("validation_accuracy")
        shown = f"{100 * value:.2f}" if value is not None else "n/a"
        lines.append(f"| {row['name']} | {shown} | {'**yes**' if row['name'] == chosen else ''} |")
    lines.append("")
    if sweep["chosen"]:
        c = sweep["chosen"]
        lines.append(
            f"Chosen: {c['name']}: validation {100 * c['validation_accuracy']:.2f}%, test "
            f"{100 * c['test_accuracy']:.1f} ± {100 * c['test_accuracy_std']:.1f}% "
            f"(`{c['workdir']}`)."
        )
    for name, reason in sweep["left_out"].items():
        lines.append(f"- left out: {name}: {reason}")
    lines.append("")
    return "\n".join(lines)
