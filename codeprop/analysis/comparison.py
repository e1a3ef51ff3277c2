"""The paper's comparison of representations, from finished probe runs.

Each representation ("arm") is a probe's workdir: its ``results.json`` (accuracy, F1,
parameters) and ``embeddings.npz`` (`codeprop.analysis.embedding_files`). `compare`
measures every arm the same way:

- accuracy (mean over folds), F1, parameters (mean over folds) and accuracy per
  parameter, from the results;
- the silhouette score as the paper defines it, over all samples of the benchmark: per
  fold, every example that fold's model embedded (training, validation and test rows),
  then the mean over folds; and the same over each fold's test rows alone (examples the
  model never fitted);
- the linear-probe accuracy (`codeprop.analysis.linear_probe`) of each fold's model's
  embeddings alone (without devmap's auxiliary inputs: what the representation holds),
  the head's L2 strength chosen on the fold's validation rows;
- a 2-D t-SNE map of the first fold's embeddings (on a benchmark with many classes, of
  `tsne_classes` seeded random classes, at most 200 examples of each).

An arm that cannot be compared (no workdir, an unreadable or inconsistent file, another
benchmark or split) is left out with its reason, which the report prints; it never leaves
a silent gap. `markdown` renders the report and `claims` checks the paper's claims.

The measurements of an arm are kept in its workdir (``measurements.npz``) under a key: the
digest of its ``results.json`` and ``embeddings.npz``, the metric, the t-SNE settings and
`MEASURED_BY` (raised when a measurement changes). A report over the same runs reads them
back instead of measuring again (POJ-104's silhouettes over 52,000 rows and linear probes
take minutes); any change to a run or a setting measures again. A workdir that cannot be
written is measured every time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import pathlib

import numpy as np

from codeprop.analysis import embedding_files, linear_probe, silhouette, tsne
from codeprop.data import json_files
from codeprop.probes import references

KINDS = ("structured", "LLM", "baseline")
FIELDS = ("name", "kind", "trained", "model", "representation", "metrics")
"""The fields of an `Arm` written to ``report.json`` (besides its workdir)."""
MEASURED_BY = 1
"""The version of `measure`'s measurements: kept ones of another version are redone."""
CACHE = "measurements.npz"


@dataclasses.dataclass
class Arm:
    """One representation's measurements.

    Attributes:
      name: as the comparison names it.
      workdir: the probe's output directory.
      kind: ``structured`` (a GNN on AST or ProGraML graphs), ``LLM`` (a decoder) or
        ``baseline`` (a bag of features).
      trained: whether the encoder was trained on the task (False: random init, a frozen
        checkpoint, a histogram).
      metrics: accuracy, accuracy_std, f1, num_params, accuracy_per_param, silhouette,
        silhouette_std, silhouette_test, linear_probe_accuracy.
      tsne: [n, 2] map, its rows' labels [n] (None when not drawn).
      reused: the measurements were read back from the workdir (`CACHE`).
    """

    name: str
    workdir: pathlib.Path
    kind: str
    trained: bool
    model: str
    representation: str
    metrics: dict
    tsne: tuple[np.ndarray, np.ndarray] | None = None
    reused: bool = False


def kind_of(results: dict) -> str:
    """``structured``, ``LLM`` or ``baseline`` from a results.json's description."""
    if results["model"].startswith(("bag of", "no program features", "static features")):
        return "baseline"
    return "LLM" if results["representation"] == "tokens" else "structured"


def is_trained(results: dict) -> bool:
    """False for a frozen encoder read by a linear head (random init, frozen checkpoint,
    bag of features); True when the encoder was trained on the task."""
    settings = results["settings"]
    return not (settings.get("frozen") or "features" in settings)


def load_arm(name: str, workdir, benchmark: str, protocol: str, split_seed: int):
    """(results, embedding file) of a finished probe, checked against the comparison's
    benchmark and split.

    Raises:
      embedding_files.EmbeddingFileError: the reason the arm cannot be compared, naming
        its file.
    """
    workdir = pathlib.Path(workdir)
    path = workdir / "results.json"
    if not path.is_file():
        raise embedding_files.EmbeddingFileError(
            f"{path}: missing (the arm {name!r} has not finished a run in {workdir})"
        )
    results = json_files.read_object(path, embedding_files.EmbeddingFileError)
    file = embedding_files.load(workdir / "embeddings.npz", benchmark, protocol, split_seed)
    return results, file


def silhouettes(file: embedding_files.EmbeddingFile, metric: str) -> dict:
    """The silhouette per fold over all the fold's embedded rows, and over its test rows."""
    every, test = [], []
    for f in range(file.num_folds):
        rows, x, labels = file.fold_rows(f)
        every.append(silhouette.silhouette_score(x, labels, metric))
        tested = file.split(f)["test"]
        if len(np.unique(file.labels[tested])) >= 2:
            test.append(
                silhouette.silhouette_score(
                    file.fold_embeddings[f, tested], file.labels[tested], metric
                )
            )
    return {
        "silhouette": float(np.mean(every)),
        "silhouette_std": float(np.std(every)),
        "silhouette_test": float(np.mean(test)) if test else float("nan"),
    }


def tsne_rows(
    file: embedding_files.EmbeddingFile, num_classes: int, seed: int, per_class: int = 200
) -> np.ndarray:
    """Rows of the first fold's embedded examples to draw: all of them, or, when the
    benchmark has more than `num_classes` classes, at most `per_class` examples of each of
    `num_classes` classes, both drawn with `seed`."""
    rows = np.flatnonzero(file.fold_of[0] >= 0)
    classes = np.unique(file.labels[rows])
    if len(classes) <= num_classes:
        return rows
    rng = np.random.default_rng(seed)
    chosen = rng.choice(classes, num_classes, replace=False)
    picked = []
    for c in chosen:
        members = rows[file.labels[rows] == c]
        picked.append(rng.choice(members, min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(picked))


def measurement_key(workdir, metric: str, tsne_classes: int, seed: int) -> str:
    """What the kept measurements of an arm must match: its files' digest and settings."""
    digest = hashlib.sha256()
    for name in ("results.json", "embeddings.npz"):
        with open(pathlib.Path(workdir) / name, "rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 22), b""):
                digest.update(chunk)
    return json.dumps(
        {
            "files": digest.hexdigest(),
            "metric": metric,
            "tsne_classes": tsne_classes,
            "seed": seed,
            "measured_by": MEASURED_BY,
        },
        sort_keys=True,
    )


def _read_kept(path: pathlib.Path, key: str):
    """(metrics, t-SNE map, its labels) kept under `key`, or None."""
    try:
        with np.load(path) as kept:
            if str(kept["key"]) != key:
                return None
            return json.loads(str(kept["metrics"])), kept["tsne"], kept["tsne_labels"]
    except (OSError, KeyError, ValueError):
        return None


def measure(
    name: str,
    workdir,
    results: dict,
    file: embedding_files.EmbeddingFile,
    metric: str = "euclidean",
    tsne_classes: int = 5,
    seed: int = 0,
) -> Arm:
    """Every measurement of one arm (see the module docstring), or the ones kept in its
    workdir under the same key."""
    workdir = pathlib.Path(workdir)
    key = measurement_key(workdir, metric, tsne_classes, seed)
    arm = dict(
        name=name,
        workdir=workdir,
        kind=kind_of(results),
        trained=is_trained(results),
        model=results["model"],
        representation=results["representation"],
    )
    kept = _read_kept(workdir / CACHE, key)
    if kept is not None:
        metrics, xy, labels = kept
        return Arm(**arm, metrics=metrics, tsne=(xy, labels), reused=True)
    metrics, (xy, labels) = _measure(results, file, metric, tsne_classes, seed)
    partial = workdir / (CACHE + ".partial")
    with contextlib.suppress(OSError):  # a read-only workdir: measured again next time
        with open(partial, "wb") as f:
            np.savez(f, key=key, metrics=json.dumps(metrics), tsne=xy, tsne_labels=labels)
        partial.replace(workdir / CACHE)
    return Arm(**arm, metrics=metrics, tsne=(xy, labels))


def _measure(results: dict, file, metric: str, tsne_classes: int, seed: int):
    """(metrics, (t-SNE map, its labels)) of one arm, measured."""
    aggregate = results["aggregate"]
    accuracy = aggregate["accuracy"]["mean"]
    trained = is_trained(results)
    splits = [file.split(f) for f in range(file.num_folds)]
    if trained or results["settings"].get("aux_inputs"):
        probe = linear_probe.linear_probe(file.fold_embeddings, file.labels, splits)
        probe_accuracy = probe["accuracy"]
    else:  # The arm's own head is this linear probe, on the embeddings alone.
        probe_accuracy = accuracy
    metrics = {
        "accuracy": accuracy,
        "accuracy_std": aggregate["accuracy"]["std"],
        "f1": aggregate["f1"]["mean"],
        "num_params": aggregate["num_params"],
        "accuracy_per_param": accuracy / max(aggregate["num_params"], 1),
        "linear_probe_accuracy": probe_accuracy,
        "folds": results["num_folds_run"],
        **silhouettes(file, metric),
    }
    rows = tsne_rows(file, tsne_classes, seed)
    xy = tsne.tsne(file.fold_embeddings[0, rows], file.labels[rows], seed=seed)
    return metrics, (xy, file.labels[rows])


def compare(
    arms: dict[str, str],
    benchmark: str,
    protocol: str,
    split_seed: int = 204,
    metric: str = "euclidean",
    tsne_classes: int = 5,
    seed: int = 0,
) -> dict:
    """Measures every arm; arms that cannot be compared are listed with their reason.

    Args:
      arms: name -> the workdir of a finished probe.
      benchmark, protocol, split_seed: what every arm must have run on.
      metric: of the silhouette, ``euclidean`` (the paper's) or ``cosine``.
      tsne_classes: classes drawn in the t-SNE maps of a benchmark with more.
      seed: of the t-SNE maps and the choice of their classes.

    Returns:
      ``benchmark``, ``protocol``, ``split_seed``, ``metric``, ``arms`` (`Arm` list, in
      the order given), ``left_out`` (name -> reason) and ``published`` (accuracies of
      other systems, `codeprop.probes.references`).
    """
    measured, left_out = [], {}
    for name, workdir in arms.items():
        try:
            results, file = load_arm(name, workdir, benchmark, protocol, split_seed)
            measured.append(measure(name, workdir, results, file, metric, tsne_classes, seed))
        except (embedding_files.EmbeddingFileError, ValueError, KeyError) as e:
            left_out[name] = f"{type(e).__name__}: {e}"
    return {
        "benchmark": benchmark,
        "protocol": protocol,
        "split_seed": split_seed,
        "metric": metric,
        "arms": measured,
        "left_out": left_out,
        "published": references.for_benchmark(benchmark),
    }


def _best(arms: list[Arm], kind: str, trained: bool, representation: str | None = None):
    """The most accurate arm of a kind (and representation), or None."""
    chosen = [
        a
        for a in arms
        if a.kind == kind and a.trained == trained and representation in (None, a.representation)
    ]
    return max(chosen, key=lambda a: a.metrics["accuracy"], default=None)


def claims(comparison: dict, near_zero: float = 0.1) -> list[dict]:
    """The paper's claims that one benchmark can check, each with its numbers.

    The paper compares GNNs trained on the task with LLMs fine-tuned on it: the claims on
    accuracy and parameters take the best trained structured arm and the best fine-tuned
    LLM arm (frozen LLMs are named in the evidence, not judged).

    Returns:
      Per claim: ``claim``, ``verdict`` (``confirmed``, ``not confirmed`` or ``cannot
      check``) and ``evidence`` (the numbers).
    """
    arms = comparison["arms"]
    structured, llm = _best(arms, "structured", True), _best(arms, "LLM", True)
    frozen = _best(arms, "LLM", False)
    out = []

    def add(claim, verdict, evidence):
        out.append({"claim": claim, "verdict": verdict, "evidence": evidence})

    beats = "trained structured representations beat fine-tuned LLMs"
    efficient = "structured models are orders of magnitude (100x) more parameter-efficient"
    if structured is None or llm is None:
        missing = "trained structured arm" if structured is None else "fine-tuned LLM arm"
        add(beats, "cannot check", f"no {missing}")
        add(efficient, "cannot check", f"no {missing}")
    else:
        s, m = structured.metrics, llm.metrics
        evidence = (
            f"{structured.name} {100 * s['accuracy']:.1f}% vs {llm.name} "
            f"{100 * m['accuracy']:.1f}% (best of each)"
        )
        if frozen is not None:
            evidence += f"; best frozen LLM: {frozen.name} {100 * frozen.metrics['accuracy']:.1f}%"
        add(beats, "confirmed" if s["accuracy"] > m["accuracy"] else "not confirmed", evidence)
        ratio = s["accuracy_per_param"] / m["accuracy_per_param"]
        add(
            efficient,
            "confirmed" if ratio >= 100 else "not confirmed",
            f"{ratio:,.0f}x accuracy per parameter ({s['num_params']:,} vs "
            f"{m['num_params']:,} parameters)",
        )
    llms = [a for a in arms if a.kind == "LLM"]
    if comparison["benchmark"].startswith("devmap") and llms:
        near = all(abs(a.metrics["silhouette"]) < near_zero for a in llms)
        add(
            f"LLM silhouettes are near zero (|s| < {near_zero})",
            "confirmed" if near else "not confirmed",
            ", ".join(f"{a.name} {a.metrics['silhouette']:+.3f}" for a in llms),
        )
    if comparison["benchmark"] == "poj104":
        programl = _best(arms, "structured", True, "programl")
        ast_arm = _best(arms, "structured", True, "ast")
        if programl is None or llm is None or ast_arm is None:
            add("ProGraML and LLM silhouettes are similar and near zero; AST's is poor",
                "cannot check", "needs trained AST, ProGraML and fine-tuned LLM arms")  # fmt: skip
        else:
            p, m, t = (x.metrics["silhouette"] for x in (programl, llm, ast_arm))
            ok = (
                abs(p - m) < near_zero
                and abs(p) < near_zero
                and abs(m) < near_zero
                and t < min(p, m)
            )
            add(
                "ProGraML and LLM silhouettes are similar and near zero; AST's is poor",
                "confirmed" if ok else "not confirmed",
                f"ProGraML {p:+.3f}, LLM {m:+.3f}, AST {t:+.3f}",
            )
    return out


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}"


def markdown(
    comparison: dict, figures: dict[str, str] | None = None, runs: dict[str, str] | None = None
) -> str:
    """The report: the table of every arm, the published systems, the claims, what was
    left out and why, the runs (with `runs`: name -> how and when each was made) and the
    figures (name -> relative PNG path)."""
    c = comparison
    lines = [
        f"# Comparison of representations: {c['benchmark']}",
        "",
        f"Protocol {c['protocol']}, split seed {c['split_seed']}; silhouette "
        f"({c['metric']}) per fold over every example the fold's model embedded, mean over "
        "folds; the test-rows silhouette over each fold's test rows; the linear probe is a "
        "logistic regression on each fold's embeddings (L2 strength chosen on validation "
        "rows) on the embeddings alone, without auxiliary inputs. Frozen encoders (random "
        "init, frozen checkpoint, bag of features) are read by that same kind of head (with "
        "the auxiliary inputs when the arm has them) for their accuracy.",
        "",
        "| representation | kind | trained | accuracy (%) | F1 | parameters | "
        "accuracy per M parameters | silhouette | silhouette (test rows) | "
        "linear probe (%) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in c["arms"]:
        m = arm.metrics
        lines.append(
            f"| {arm.name} | {arm.kind} | {'yes' if arm.trained else 'no'} | "
            f"{_pct(m['accuracy'])} ± {_pct(m['accuracy_std'])} | {m['f1']:.3f} | "
            f"{m['num_params']:,} | {100 * m['accuracy_per_param'] * 1e6:,.0f} | "
            f"{m['silhouette']:+.3f} ± {m['silhouette_std']:.3f} | "
            f"{m['silhouette_test']:+.3f} | {_pct(m['linear_probe_accuracy'])} |"
        )
    lines += [
        "",
        "Accuracy per M parameters: accuracy (%) divided by millions of parameters.",
        "",
        "## Published accuracies of other systems (not run here)",
        "",
        "| system | accuracy (%) |",
        "|---|---|",
        *(f"| {k} (published) | {v:.1f} |" for k, v in c["published"].items()),
        "",
        "## The paper's claims on this benchmark",
        "",
        "| claim | verdict | evidence |",
        "|---|---|---|",
        *(f"| {x['claim']} | {x['verdict']} | {x['evidence']} |" for x in claims(c)),
        "",
    ]
    if c["left_out"]:
        lines += ["## Left out", ""]
        lines += [f"- **{name}**: {reason}" for name, reason in c["left_out"].items()]
        lines.append("")
    lines += ["## Runs", ""]
    runs = runs or {}
    lines += [
        f"- {arm.name}: {arm.model}, `{arm.workdir}`"
        + (f"; {runs[arm.name]}" if arm.name in runs else "")
        for arm in c["arms"]
    ]
    lines.append("")
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{title}]({path})" for title, path in figures.items()]
        lines.append("")
    return "\n".join(lines)


def as_json(comparison: dict) -> dict:
    """The comparison without the t-SNE maps, for ``report.json``."""
    arms = [
        {
            k: getattr(a, k)
            for k in ("name", "kind", "trained", "model", "representation", "metrics")
        }
        | {"workdir": str(a.workdir), "measurements_reused": a.reused}
        for a in comparison["arms"]
    ]
    return {**comparison, "arms": arms, "claims": claims(comparison)}
