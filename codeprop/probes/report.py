"""Aggregating per-fold results and rendering them (terminal and Markdown)."""

from __future__ import annotations

import numpy as np

from codeprop.probes import references

_METRICS = ("accuracy", "precision", "recall", "f1", "speedup_mean", "speedup_geomean")


def aggregate(folds: list[dict]) -> dict:
    """Mean and standard deviation over folds of each metric, and the pooled accuracy.

    The pooled accuracy counts correct test predictions over all folds (every example is
    tested once in k-fold CV); the fold mean weights folds equally.
    """
    out: dict = {}
    for key in _METRICS:
        values = [f[key] for f in folds if key in f]
        if values:
            out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    total = sum(f["test"] for f in folds)
    correct = sum(round(f["accuracy"] * f["test"]) for f in folds)
    out["pooled_accuracy"] = correct / max(total, 1)
    # The node-type vocabulary is built per fold, so the count can differ by a few rows.
    out["num_params"] = int(round(np.mean([f["num_params"] for f in folds]))) if folds else 0
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def summary_rows(results: dict) -> list[tuple[str, str]]:
    agg = results["aggregate"]
    rows = [
        ("accuracy (%)", f"{_pct(agg['accuracy']['mean'])} ± {_pct(agg['accuracy']['std'])}"),
        ("pooled accuracy (%)", _pct(agg["pooled_accuracy"])),
        ("precision", f"{agg['precision']['mean']:.3f}"),
        ("recall", f"{agg['recall']['mean']:.3f}"),
        ("F1", f"{agg['f1']['mean']:.3f}"),
    ]
    if "speedup_mean" in agg:
        rows.append(("speedup over static (mean)", f"{agg['speedup_mean']['mean']:.3f}"))
        rows.append(("speedup over static (geomean)", f"{agg['speedup_geomean']['mean']:.3f}"))
    rows.append(("parameters (mean over folds)", f"{agg['num_params']:,}"))
    rows.append(
        (
            "accuracy per 1k parameters (%)",
            f"{100 * agg['accuracy']['mean'] / agg['num_params'] * 1e3:.3f}",
        )
    )
    return rows


def terminal(results: dict) -> str:
    """A plain-text summary table."""
    title = (
        f"{results['benchmark']}  {results['representation'].upper()} + {results['model']}  "
        f"({results['protocol']}, {results['num_folds_run']} fold(s))"
    )
    rows = summary_rows(results)
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * len(title)] + [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines) + "\n"


def markdown(results: dict) -> str:
    """Results as Markdown: summary, per-fold table, data report, published references."""
    lines = [
        f"# {results['benchmark']}: {results['representation'].upper()} + {results['model']}",
        "",
        f"Protocol: {results['protocol']}, {results['num_folds_run']} fold(s), split seed "
        f"{results['split_seed']}.",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in summary_rows(results)),
        "",
        "## Per fold",
        "",
        "| fold | train | val | test | best epoch | val acc | test acc | F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in results["folds"]:
        lines.append(
            f"| {f['fold']} | {f['train']} | {f['validation']} | {f['test']} | {f['best_epoch']} "
            f"| {_pct(f['best_validation_accuracy'])} | {_pct(f['accuracy'])} | {f['f1']:.3f} |"
        )
    lines += ["", "## Data", ""]
    for section, values in results["data"].items():
        for k, v in values.items():
            lines.append(f"- {section}.{k}: {v}")
    lines += [
        "",
        "## Published reference accuracies (other systems; not produced by this run)",
        "",
        "| system | accuracy (%) |",
        "|---|---|",
        *(
            f"| {k} (published) | {v:.1f} |"
            for k, v in references.for_benchmark(results["benchmark"]).items()
        ),
        "",
    ]
    return "\n".join(lines)
