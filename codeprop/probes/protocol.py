"""The probe protocol, one for every representation: splits, folds, metrics, result files.

A probe (`codeprop.probes.graph_probe`, `codeprop.probes.llm_probe`) turns a benchmark into
model inputs and says how to train one fold (a `FitFold`); `run` does the rest, the same
way for graphs and token sequences:

1. the splits of the protocol (`make_splits`: stratified k-fold, 80/10/10 hold-out,
   POJ-104's per-class 3:1:1, or devmap's k-fold of whole kernels, ``grouped_kfold``),
   seeded so every representation sees the same folds;
2. examples without an input (a program that did not compile) left out of every split and
   counted per fold (``test_without_input``);
3. the auxiliary inputs (devmap's log transfer and work-group size, standardised on each
   training fold) when asked for;
4. per fold: training through `codeprop.train.classifier.fit`, a progress line or two
   (`codeprop.train.progress`), TensorBoard scalars under ``metrics/``, and the fold's
   record (`fold_record`: sizes, selected epoch, test metrics, devmap speed-ups);
5. the files in ``workdir``:

     results.json     per-fold and aggregated metrics, data report, settings
     results.md       the same as Markdown tables, with published reference numbers
     embeddings.npz   each example's test embedding, label and test fold
     metrics/         per-epoch losses and accuracies (TensorBoard)
     folds/           each finished fold's record and embeddings (`FoldStore`), and
                      the unfinished fold's training state (``fold_<i>.training/``)

A run that stops (killed, preempted, a crash) keeps its finished folds: the same command
in the same workdir reads them back instead of training them again, when they were made
with the same settings, protocol and split (their key); the results are those of a run
that never stopped, training being seeded per fold. The fold it stopped in continues
from its newest save (every `checkpoint_every` seconds of training, after an epoch or
between two jitted calls of steps inside one, `codeprop.train.epoch_checkpoints`), again
exactly. SIGTERM stops a run cleanly at the next such point (`codeprop.train.preemption`),
saving it: `run` then returns ``{"preempted": True, ...}`` and writes no results (a frozen
encoder's fold stops after its current embedding batch, and starts over when resumed).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import time
from collections.abc import Callable

import numpy as np
from clu import metric_writers

from codeprop.data import benchmarks, devmap, splits
from codeprop.probes import report
from codeprop.train import classifier, epoch_checkpoints, metrics, preemption, progress

PROTOCOLS = splits.PROTOCOLS

FitFold = Callable[[dict[str, np.ndarray], np.ndarray | None, dict], tuple[dict, dict]]
"""Trains one fold: ``(split, aux, fit_kwargs) -> (result, extra)``.

``split`` holds the row indices ``train``/``validation``/``test`` (rows with an input
only), ``aux`` the [N, A] auxiliary inputs or None, and ``fit_kwargs`` the keyword
arguments to pass on to `codeprop.train.classifier.fit` (writer, step offset, progress,
and ``stop``, true once SIGTERM arrived).
``result`` is what `fit` returned; ``extra`` holds fields added to the fold's record
(e.g. the vocabulary size).
"""


def source_of(bench: benchmarks.Benchmark, example: dict, source_field: str | None) -> str:
    """The source text of an example: `source_field`, else devmap's normalised kernel or
    the POJ-104 program."""
    if source_field:
        return example[source_field]
    return example["normalized_source"] if bench.platform else example["text"]


def groups_of(bench: benchmarks.Benchmark) -> list[str] | None:
    """[N] each example's group for ``grouped_kfold``: devmap's kernel (its ``benchmark``
    name, e.g. ``npb-3.3-BT-add``; the rows of a kernel differ in data size); None for a
    benchmark without groups (POJ-104)."""
    return [e["benchmark"] for e in bench.examples] if bench.platform else None


def make_splits(
    labels, protocol: str, num_folds: int, seed: int, groups=None
) -> list[dict[str, np.ndarray]]:
    """The evaluation splits of a protocol (`codeprop.data.splits.of_protocol`); ``groups``
    ([N], `groups_of`) for ``grouped_kfold``."""
    if protocol == "grouped_kfold" and groups is None:
        raise ValueError(
            "protocol 'grouped_kfold' holds out whole devmap kernels; this benchmark has no "
            "kernels (use 'kfold', 'holdout' or 'per_class_3_1_1')"
        )
    return splits.of_protocol(labels, protocol, num_folds, seed, groups=groups)


def aux_inputs_of(examples: list[dict], train: np.ndarray) -> np.ndarray:
    """[N, 2] log transfer and log work-group size, standardised on the training rows."""
    x = np.log1p(np.array([[e["transfer"], e["wgsize"]] for e in examples], np.float64))
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    return ((x - mean) / std).astype(np.float32)


def check_aux_inputs(bench: benchmarks.Benchmark, aux_inputs: bool) -> None:
    if aux_inputs and not bench.platform:
        raise ValueError("aux_inputs are devmap's transfer and wgsize; not available for POJ-104")


def fold_record(
    i: int, split: dict, bench: benchmarks.Benchmark, result: dict, start: float
) -> dict:
    """One fold's sizes, model selection and test metrics (devmap: with speed-ups)."""
    labels = np.array(bench.labels, np.int32)
    predictions = result["test_logits"].argmax(-1)
    fold = {
        "fold": i,
        "train": len(split["train"]),
        "validation": len(split["validation"]),
        "test": len(split["test"]),
        "best_epoch": result["best_epoch"],
        "best_validation_accuracy": result["best_validation_accuracy"],
        "num_params": result["num_params"],
        **metrics.classification_metrics(labels[split["test"]], predictions, bench.num_classes),
        "seconds": round(time.perf_counter() - start, 2),
    }
    if "regularisation" in result:  # A frozen encoder's linear head (`classifier.fit_frozen`).
        fold["regularisation"] = result["regularisation"]
    if "head_setting" in result:  # Boosted trees' chosen setting (`codeprop.train.boosted_head`).
        fold["head_setting"] = result["head_setting"]
    if "network_validation_accuracy" in result:  # A trained GNN's own head, before the trees.
        fold["network_validation_accuracy"] = result["network_validation_accuracy"]
    if bench.platform:
        test_examples = [bench.examples[j] for j in split["test"]]
        fold.update(devmap.speedup_over_static(predictions, test_examples, bench.platform))
    return fold


class FoldStore:
    """Finished folds of a run in ``<workdir>/folds/``: ``fold_<i>.json`` (the key and the
    fold's record) and ``fold_<i>.npz`` (its test rows and embeddings, and every row of its
    splits with their embeddings), each written to a temporary name and renamed, the
    record last, so that a fold is either complete or absent.

    Attributes:
      directory: ``<workdir>/folds``.
      key: what a saved fold must have been made with (`fold_key`).
    """

    def __init__(self, workdir: pathlib.Path, key: str):
        self.directory, self.key = workdir / "folds", key

    def paths(self, index: int) -> tuple[pathlib.Path, pathlib.Path]:
        """(record, arrays) file of fold ``index``."""
        stem = self.directory / f"fold_{index:03d}"
        return stem.with_suffix(".json"), stem.with_suffix(".npz")

    def load(self, index: int) -> tuple[dict, dict] | None:
        """(record, arrays) of fold ``index`` saved under the same key, else None (a fold
        saved under another key is ignored and later overwritten)."""
        record_path, arrays_path = self.paths(index)
        if not (record_path.is_file() and arrays_path.is_file()):
            return None
        try:
            saved = json.loads(record_path.read_text())
            with np.load(arrays_path) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{record_path}: a saved fold that cannot be read ({error}); delete "
                f"{record_path} and {arrays_path} to train the fold again"
            ) from None
        if saved.get("key") != self.key:
            return None
        return saved["fold"], arrays

    def training(self, index: int, every_seconds: float) -> epoch_checkpoints.EpochCheckpoints:
        """Where fold ``index`` saves its training state between epochs until it is
        finished: ``fold_<i>.training/`` (`epoch_checkpoints`), under the same key."""
        return epoch_checkpoints.EpochCheckpoints(
            self.directory / f"fold_{index:03d}.training", self.key, every_seconds
        )

    def save(self, index: int, fold: dict, arrays: dict[str, np.ndarray]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        record_path, arrays_path = self.paths(index)
        partial = arrays_path.with_name(arrays_path.stem + ".partial.npz")
        np.savez(partial, **arrays)
        os.replace(partial, arrays_path)
        partial = record_path.with_suffix(".json.partial")
        partial.write_text(json.dumps({"key": self.key, "fold": fold}, default=float) + "\n")
        os.replace(partial, record_path)


def fold_key(settings: dict, split: dict[str, np.ndarray]) -> str:
    """sha256 of a fold's settings (model, training, protocol, inputs) and of its rows."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for name in ("train", "validation", "test"):
        digest.update(name.encode() + np.asarray(split[name], np.int64).tobytes())
    return digest.hexdigest()


def run(
    *,
    workdir: str | pathlib.Path,
    bench: benchmarks.Benchmark,
    input_of: np.ndarray,
    fit_fold: FitFold,
    train: classifier.TrainConfig,
    header: dict,
    protocol: str = "kfold",
    num_folds: int = 10,
    split_seed: int = 204,
    max_folds: int | None = None,
    aux_inputs: bool = False,
    progress_every: float = 30.0,
    checkpoint_every: float = 600.0,
) -> dict:
    """Runs a probe under the protocol and writes its result files.

    Args:
      workdir: output directory (created).
      bench: the loaded benchmark.
      input_of: [N] each example's input, -1 for an example without one (left out of
        every split, counted in each fold's ``test_without_input``).
      fit_fold: trains one fold (see `FitFold`).
      train: the optimisation settings (for the step offsets of the TensorBoard scalars
        and the progress lines).
      header: ``representation``, ``model``, ``settings`` and ``data`` of the results.
      protocol, num_folds, split_seed, max_folds, aux_inputs: as in
        `codeprop.probes.graph_probe.run_graph_probe`.
      progress_every: least seconds between two in-fold progress lines.
      checkpoint_every: least seconds of training between two saves of an unfinished
        fold's training state (`FoldStore.training`; 0: after every epoch and between
        every two calls of steps).

    Returns:
      The results dict also written to ``workdir/results.json``.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    check_aux_inputs(bench, aux_inputs)
    labels = np.array(bench.labels, np.int32)
    has_input = np.asarray(input_of) >= 0
    fold_splits = make_splits(labels, protocol, num_folds, split_seed, groups_of(bench))
    fold_splits = fold_splits[:max_folds]
    # TensorBoard only: per-epoch scalars would drown the progress lines in a terminal.
    writer = metric_writers.SummaryWriter(str(workdir / "metrics"))
    reporter = progress.Progress(len(fold_splits), train.epochs, every_seconds=progress_every)
    folds, embeddings, fold_embeddings = [], [], []
    test_fold = np.full(len(labels), -1, np.int32)
    key_settings = {
        "benchmark": bench.name,
        "header": {k: header[k] for k in ("representation", "model", "settings")},
        "train": vars(train),
        "protocol": [protocol, num_folds, split_seed, aux_inputs],
    }

    def run_folds(stop: preemption.Preemption) -> int | None:
        """Runs or reads back each fold; the index of the fold SIGTERM stopped (in its
        training, `preemption.Preempted`, or before it started), else None."""
        for i, split in enumerate(fold_splits):
            if stop.requested:
                return i
            start = time.perf_counter()
            without = int((~has_input[split["test"]]).sum())
            split = {k: v[has_input[v]] for k, v in split.items()}
            store = FoldStore(workdir, fold_key(key_settings, split))
            saved = store.load(i)
            if saved is not None:
                fold, arrays = saved
                reporter.reused_fold(i, fold, str(store.paths(i)[0]))
            else:
                reporter.start_fold(i)
                aux = aux_inputs_of(bench.examples, split["train"]) if aux_inputs else None
                fit_kwargs = {
                    "writer": writer,
                    "step_offset": i * (train.epochs + 1),
                    "progress": reporter.epoch,
                    "step_progress": reporter.within,
                    "embed_all": True,
                    "stop": lambda: stop.requested,
                    "checkpoints": store.training(i, checkpoint_every),
                }
                try:
                    result, extra = fit_fold(split, aux, fit_kwargs)
                except preemption.Preempted:
                    return i
                fold = fold_record(i, split, bench, result, start)
                fold.update(test_without_input=without, **extra)
                # As saved and read back, so that a resumed run's folds are the same objects.
                fold = json.loads(json.dumps(fold, default=float))
                arrays = {
                    "test_rows": split["test"],
                    "test_embeddings": result["test_embeddings"],
                    "rows": result["rows"],
                    "embeddings": result["embeddings"],
                }
                store.save(i, fold, arrays)
                fit_kwargs["checkpoints"].discard()
                reporter.end_fold(fold)
            folds.append(fold)
            test_fold[split["test"]] = i
            embeddings.append((split["test"], arrays["test_embeddings"]))
            fold_embeddings.append((arrays["rows"], arrays["embeddings"]))
        return None

    with preemption.Preemption() as stop:
        stopped = run_folds(stop)
    writer.flush()
    if stopped is not None:
        print(
            f"SIGTERM: stopped in fold {stopped + 1} of {len(fold_splits)}; {len(folds)} "
            f"finished folds are kept in {workdir / 'folds'} and the same command resumes "
            "after them"
        )
        return {"preempted": True, "folds_finished": len(folds), "folds": len(fold_splits)}
    results = {
        "benchmark": bench.name,
        "representation": header["representation"],
        "model": header["model"] + (" + aux inputs" if aux_inputs else ""),
        "protocol": protocol,
        "num_folds_run": len(folds),
        "split_seed": split_seed,
        "settings": header["settings"] | {"train": vars(train), "aux_inputs": aux_inputs},
        "data": {"benchmark": bench.report, **header["data"]},
        "folds": folds,
        "aggregate": report.aggregate(folds),
    }
    write_results(workdir, results, embeddings, labels, test_fold, fold_embeddings)
    return results


def write_results(
    workdir: pathlib.Path, results: dict, embeddings, labels, test_fold, fold_embeddings
) -> None:
    """``results.json``, ``results.md`` and ``embeddings.npz`` (see `write_embeddings`)."""
    write_embeddings(
        workdir / "embeddings.npz", results, embeddings, labels, test_fold, fold_embeddings
    )
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (workdir / "results.md").write_text(report.markdown(results))


def write_embeddings(path, results: dict, embeddings, labels, test_fold, fold_embeddings) -> None:
    """A self-describing embeddings file (read it with `codeprop.analysis.embedding_files`).

    Arrays: ``embeddings`` [N, D] (each example's embedding by the model of the fold that
    tested it; NaN rows for examples never tested), ``fold_embeddings`` [F, N, D] (every
    example of fold f's splits embedded by fold f's model; NaN rows for examples without
    an input), ``fold_of`` [F, N] (0 training, 1 validation, 2 test, -1 in no split of
    the fold), ``labels`` [N], ``test_fold`` [N] (-1: never tested), ``num_params`` [F]
    (each fold's model). Strings: ``benchmark``, ``representation``, ``model``,
    ``protocol``; ``split_seed``.

    Args:
      embeddings: (row indices [n], embeddings [n, D]) per fold: its test rows.
      fold_embeddings: (row indices [n], embeddings [n, D]) per fold: the training,
        validation and test rows, in that order.
    """
    dim = embeddings[0][1].shape[1]
    table = np.full((len(labels), dim), np.nan, np.float32)
    for idx, emb in embeddings:
        table[idx] = emb
    per_fold = np.full((len(fold_embeddings), len(labels), dim), np.nan, np.float32)
    part = np.full((len(fold_embeddings), len(labels)), -1, np.int8)
    for f, ((idx, emb), fold) in enumerate(zip(fold_embeddings, results["folds"], strict=True)):
        per_fold[f, idx] = emb
        sizes = [fold["train"], fold["validation"], fold["test"]]
        part[f, idx] = np.repeat(np.arange(3, dtype=np.int8), sizes)
    np.savez_compressed(
        path,
        embeddings=table,
        fold_embeddings=per_fold,
        fold_of=part,
        labels=labels,
        test_fold=test_fold,
        num_params=np.array([f["num_params"] for f in results["folds"]], np.int64),
        benchmark=results["benchmark"],
        representation=results["representation"],
        model=results["model"],
        protocol=results["protocol"],
        split_seed=results["split_seed"],
    )
