r"""The comparison in one command: run (or reuse) every arm, then write the report.

`run_comparison` is what ``gin/experiments/compare_*.gin`` bind:

    python -m codeprop.main --gin_file=gin/experiments/compare_devmap_amd.gin \
        --workdir=workdir/compare_devmap_amd

Each arm is a probe experiment given as gin files and bindings (the same ones
``python -m codeprop.main`` takes alone), run in ``<workdir>/arms/<slug>`` or reused
when a finished run of exactly its config is there (`codeprop.recipes.arms`). The code's
version is not part of the key: after changing codeprop, set ``rerun = True``.

Then `codeprop.analysis.comparison` measures the arms and ``<workdir>/report/`` gets
``report.md``, ``report.json`` and the figures (`codeprop.analysis.comparison_figures`).
An arm that failed or cannot be compared is left out of the report with its reason.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

from codeprop.analysis import comparison as comparison_lib
from codeprop.analysis import comparison_figures
from codeprop.recipes import arms as arms_lib
from codeprop.recipes import config_checks


def _with_common_bindings(specs: dict, bindings: list[str]) -> tuple[dict, dict[str, str]]:
    """Each arm's (files, own bindings) with ``bindings`` appended, a macro binding among
    them (e.g. ``EPOCHS = 2``) only to the arms whose config uses that macro (a
    bag-of-features arm has no epochs), and the config each arm then parses to; a common
    macro that no arm uses is an error, as a misspelt one would be."""
    common = {config_checks.macro_name(b) for b in bindings} - {None}
    out = arms_lib._configs_in_child(list(specs.values()), "with_common_bindings", bindings)
    unused = dict(zip(specs, out["unused"], strict=True))
    if nowhere := sorted(m for m in common if all(m in unused[name] for name in specs)):
        raise ValueError(f"bindings set gin macros that no arm uses (misspelt?): {nowhere}")
    merged = dict(zip(specs, map(tuple, out["specs"]), strict=True))
    return merged, dict(zip(specs, out["configs"], strict=True))


def run_comparison(
    *,
    workdir: str | os.PathLike,
    benchmark: str,
    protocol: str,
    arms: dict[str, list[str]],
    bindings: list[str] = (),
    arm_bindings: dict[str, list[str]] | None = None,
    split_seed: int = 204,
    metric: str = "euclidean",
    tsne_classes: int = 5,
    seed: int = 0,
    rerun: bool = False,
    run: bool = True,
    parallel: int = 1,
    arms_dir: str | os.PathLike | None = None,
) -> dict:
    """Runs or reuses every arm, then writes ``<workdir>/report/``.

    Args:
      workdir: output directory; arms go to ``arms/<slug>`` (see `arms_dir`), the report
        to ``report/``.
      benchmark, protocol, split_seed: what every arm runs on (checked on its embeddings).
      arms: name -> gin files and bindings of the arm's experiment.
      bindings: added after every arm's own (e.g. ``EPOCHS = 2``, ``MAX_FOLDS = 2``); a
        macro binding only to the arms that use the macro (one that none uses: an error).
      arm_bindings: arm name -> bindings added after that arm's own (a shorter variant
        of a comparison, as ``compare_poj104_short.gin`` makes of ``compare_poj104.gin``).
      metric: of the silhouette, ``euclidean`` (the paper's) or ``cosine``.
      tsne_classes: classes drawn in the t-SNE maps of a benchmark with more.
      seed: of the t-SNE maps and the choice of their classes.
      rerun: run every arm even when a finished run of its config is there.
      run: False only reports the finished arms (the others are left out).
      parallel: how many arms run at once (for a machine with cores to spare).
      arms_dir: where the arms run and are reused (default ``<workdir>/arms``); point
        another comparison or a sweep at the same one to share the arms it has in common.

    Returns:
      The comparison (`codeprop.analysis.comparison.as_json`) with ``arm_runs`` (what
      happened to each arm), ``report_dir`` and ``report`` (the path of report.md); or,
      when SIGTERM stopped it, ``{"preempted": True, "arm_runs"}`` (no report).
    """
    workdir = pathlib.Path(workdir).resolve()
    specs = {name: arms_lib.split_spec(list(spec)) for name, spec in arms.items()}
    arm_bindings = dict(arm_bindings or {})
    if unknown := sorted(set(arm_bindings) - set(specs)):
        raise ValueError(f"arm_bindings names arms that are not in arms: {unknown}")
    specs = {
        name: (files, [*own, *arm_bindings.get(name, ())]) for name, (files, own) in specs.items()
    }
    specs, configs = _with_common_bindings(specs, list(bindings))
    arm_dirs, arm_runs = arms_lib.run_or_reuse(
        pathlib.Path(arms_dir) if arms_dir else workdir / "arms",
        specs,
        rerun,
        run,
        parallel,
        configs,
    )
    if arms_lib.stopped(arm_runs):  # SIGTERM: no report from a part of the arms
        return {"preempted": True, "arm_runs": arm_runs}
    start = time.perf_counter()
    result = comparison_lib.compare(
        arm_dirs, benchmark, protocol, split_seed, metric, tsne_classes, seed
    )
    for name, state in arm_runs.items():
        if name in result["left_out"] and not state.startswith(("ran", "reused")):
            result["left_out"][name] = f"{state}; {result['left_out'][name]}"
    report_dir = workdir / "report"
    figures = comparison_figures.write_figures(result, report_dir)
    made = {}
    reused = {a.name for a in result["arms"] if a.reused}
    for name, arm_dir in arm_dirs.items():
        record = arms_lib.run_record(arm_dir)
        if record:
            made[name] = (
                f"{arm_runs[name]}; run at code {record['code_version']}, started "
                f"{record['started']}, {record['seconds']:.0f} s"
            ) + ("; measurements read back" if name in reused else "")
    (report_dir / "report.md").write_text(comparison_lib.markdown(result, figures, made))
    out = comparison_lib.as_json(result) | {
        "arm_runs": arm_runs,
        "report_dir": str(report_dir),
        "report": str(report_dir / "report.md"),
        "report_seconds": round(time.perf_counter() - start, 1),
    }
    (report_dir / "report.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    return out
