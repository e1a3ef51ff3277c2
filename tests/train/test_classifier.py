import json

import jax
import numpy as np
import pytest

from codeprop.graphs import ast, batching
from codeprop.models import gnn
from codeprop.probes import graph_probe
from codeprop.train import batchers, classifier, epoch_checkpoints, preemption

from conftest import SMALL_C_PROGRAMS

PROGRAMS = SMALL_C_PROGRAMS
LABELS = np.array([0, 1, 0, 1, 1, 0, 0, 1], np.int32)


def _data(cfg, labels=LABELS, graph_of=None):
    raw = [ast.ast_graph(p, "c") for p in PROGRAMS]
    vocab = ast.NodeTypeVocab.build(raw, "c")
    graphs = [graph_probe.model_inputs(vocab.encode(g, vocab.table("c")), cfg) for g in raw]
    graph_of = np.arange(len(graphs)) if graph_of is None else graph_of
    return batchers.Examples(graphs, graph_of, labels), len(vocab)


@pytest.mark.parametrize(
    "schedule", [{}, {"schedule": "cosine", "warmup_epochs": 5}], ids=["constant", "cosine"]
)
def test_overfits_eight_graphs(schedule):
    cfg = gnn.GCNConfig(hidden_dim=32, embed_dim=32, readout="sum")
    data, vocab_size = _data(cfg)
    everything = np.arange(8)
    split = {"train": everything, "validation": everything, "test": everything}
    model = graph_probe.make_model(cfg, data.inputs, vocab_size, 2)
    config = classifier.TrainConfig(epochs=150, batch_size=4, learning_rate=0.02, **schedule)
    result = classifier.fit(model, data, split, config)
    assert (result["test_logits"].argmax(-1) == LABELS).mean() == 1.0
    assert result["history"][-1]["train_accuracy"] == 1.0
    assert result["test_embeddings"].shape == (8, 32)


def _twelve_rows():
    """A GCN with dropout, and 12 rows over 8 graphs (rows 8..11 reuse graphs 0..3 with
    other labels) split 12/2/3: (model, data, split)."""
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=8, dropout_rate=0.1)
    graph_of = np.concatenate([np.arange(8), np.arange(4)])
    labels = np.concatenate([LABELS, 1 - LABELS[:4]])
    data, vocab_size = _data(cfg, labels, graph_of)
    split = {"train": np.arange(12), "validation": np.array([9, 1]), "test": np.array([11, 3, 5])}
    return graph_probe.make_model(cfg, data.inputs, vocab_size, 2), data, split


def test_same_seed_same_bytes_and_rows_in_order():
    model, data, split = _twelve_rows()
    config = classifier.TrainConfig(epochs=3, batch_size=3, learning_rate=0.01, seed=7)
    a = classifier.fit(model, data, split, config)
    b = classifier.fit(model, data, split, config)
    assert a["test_logits"].tobytes() == b["test_logits"].tobytes()
    for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"])):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
    # Rows 11 and 3 share a graph: same embedding, reported in the order asked for.
    assert a["test_logits"].shape == (3, 2)
    np.testing.assert_array_equal(a["test_embeddings"][0], a["test_embeddings"][1])
    assert not np.array_equal(a["test_embeddings"][0], a["test_embeddings"][2])


def test_batches_share_graphs_between_rows():
    cfg = gnn.GCNConfig()
    graph_of = np.array([0, 1, 0, 2, 1])
    data, _ = _data(cfg, np.zeros(5, np.int32), graph_of)
    data = batchers.Examples(data.inputs[:3], graph_of, data.labels)
    budget = batching.estimate_budget(data.inputs, batch_size=3)
    num_rows = batchers.row_budget(data, budget)
    assert num_rows == 3 * 2  # 3 graph slots, at most 2 rows per graph.
    ((batch, rows),) = list(batchers.batches(data, np.arange(5), budget, num_rows))
    assert rows.tolist() == [0, 2, 1, 4, 3]  # Grouped by graph, in first-appearance order.
    assert batch["rows"].tolist() == [0, 0, 1, 1, 2, 3]
    assert batch["mask"].tolist() == [True] * 5 + [False]
    assert batch["inputs"].n_node.shape == (4,)


def test_unknown_schedules_are_refused():
    with pytest.raises(ValueError, match="schedule must be"):
        classifier.TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="selection must be"):
        classifier.TrainConfig(selection="f1")


def test_selection_breaks_accuracy_ties_by_loss():
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=8)
    data, vocab_size = _data(cfg)
    split = {"train": np.arange(6), "validation": np.array([6, 7]), "test": np.arange(8)}
    model = graph_probe.make_model(cfg, data.inputs, vocab_size, 2)
    results = {}
    for selection in classifier.SELECTIONS:
        config = classifier.TrainConfig(
            epochs=30, batch_size=3, learning_rate=0.01, selection=selection
        )
        results[selection] = classifier.fit(model, data, split, config)
    history = results["accuracy"]["history"]
    best = max(h["validation_accuracy"] for h in history)
    ties = [h for h in history if h["validation_accuracy"] == best]
    assert len(ties) > 1  # Two validation rows: accuracy takes three values only.
    assert results["accuracy"]["best_epoch"] == ties[0]["epoch"]
    lowest = min(ties, key=lambda h: h["validation_loss"])
    assert results["accuracy_then_loss"]["best_epoch"] == lowest["epoch"] != ties[0]["epoch"]
    lowest_overall = min(history, key=lambda h: h["validation_loss"])
    assert results["loss"]["best_epoch"] == lowest_overall["epoch"]
    # The same training run: only the kept epoch differs.
    assert results["accuracy_then_loss"]["history"] == results["loss"]["history"] == history


def test_fit_embeds_every_row_of_the_split_with_the_selected_model():
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=8)
    data, vocab_size = _data(cfg)
    split = {
        "train": np.array([0, 1, 2, 3, 4]),
        "validation": np.array([5]),
        "test": np.array([6, 7]),
    }
    model = graph_probe.make_model(cfg, data.inputs, vocab_size, 2)
    config = classifier.TrainConfig(epochs=2, batch_size=4, learning_rate=0.01)
    result = classifier.fit(model, data, split, config, embed_all=True)
    assert result["rows"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert result["embeddings"].shape == (8, 8)
    np.testing.assert_allclose(result["embeddings"][6:], result["test_embeddings"], rtol=1e-6)
    assert result["num_params"] == gnn.num_params(result["params"])
    assert "embeddings" not in classifier.fit(model, data, split, config)


def test_fit_frozen_trains_only_a_linear_head_on_the_initial_encoder():
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=8)
    data, vocab_size = _data(cfg)
    split = {"train": np.arange(6), "validation": np.array([6]), "test": np.array([7])}
    model = graph_probe.make_model(cfg, data.inputs, vocab_size, 2)
    config = classifier.TrainConfig(epochs=5, batch_size=4, seed=3)
    frozen = classifier.fit_frozen(model, data, split, config, embed_all=True)
    # The encoder is its initialisation: the embeddings of a 0-epoch fit from that seed.
    untrained = classifier.fit(
        model, data, split, config.__class__(epochs=0, seed=3), embed_all=True
    )
    np.testing.assert_allclose(frozen["embeddings"], untrained["embeddings"], rtol=1e-6)
    encoder = gnn.num_params(untrained["params"]) - (8 * 2 + 2)  # without the GCN's own head
    assert frozen["num_params"] == encoder + 8 + 1  # plus a binary logistic regression
    assert "head" not in frozen["params"] and frozen["best_epoch"] == 0
    assert frozen["regularisation"] in (0.01, 0.1, 1.0, 10.0)
    assert frozen["test_logits"].shape == (1, 2)


def test_a_stopped_fit_resumes_from_its_saved_epoch_exactly(tmp_path):
    model, data, split = _twelve_rows()
    # A cosine schedule and shuffling: the resumed epochs depend on the step and the
    # generator's state, not only on the parameters.
    config = classifier.TrainConfig(
        epochs=6, batch_size=3, learning_rate=0.01, seed=7, schedule="cosine", warmup_epochs=1
    )
    whole = classifier.fit(model, data, split, config)

    saves = epoch_checkpoints.EpochCheckpoints(tmp_path / "fold", "key-1", every_seconds=0)
    epochs_run, steps_run = [], []

    def progress(record):
        epochs_run.append(record["epoch"])
        steps_run.append(record["steps"])

    with pytest.raises(preemption.Preempted, match="after epoch 4 of 6"):
        classifier.fit(
            model, data, split, config, checkpoints=saves,
            progress=progress, stop=lambda: len(epochs_run) == 4,
        )  # fmt: skip
    # Named by the optimizer step after epoch 4 (3 or 4 batches an epoch: rows 8 to 11
    # reuse graphs, and a batch holds 3 distinct graphs).
    assert 12 <= steps_run[-1] <= 16
    saved = [p.name for p in (tmp_path / "fold" / "checkpoints").iterdir()]
    assert saved == [str(steps_run[-1])]
    resumed = classifier.fit(
        model, data, split, config, checkpoints=saves,
        progress=lambda r: epochs_run.append(r["epoch"]),
    )  # fmt: skip
    assert epochs_run == [1, 2, 3, 4, 5, 6]  # the second fit ran epochs 5 and 6 only
    assert resumed["history"] == whole["history"]
    assert resumed["best_epoch"] == whole["best_epoch"]
    np.testing.assert_array_equal(resumed["test_logits"], whole["test_logits"])
    for a, b in zip(jax.tree.leaves(resumed["params"]), jax.tree.leaves(whole["params"])):
        np.testing.assert_array_equal(a, b)

    # Saved state of other settings is deleted, not used.
    other = epoch_checkpoints.EpochCheckpoints(tmp_path / "fold", "key-2", every_seconds=0)
    epochs_run.clear()
    classifier.fit(model, data, split, config, checkpoints=other,
                   progress=lambda r: epochs_run.append(r["epoch"]))  # fmt: skip
    assert epochs_run == [1, 2, 3, 4, 5, 6]
    assert json.loads((tmp_path / "fold" / "key.json").read_text()) == {"key": "key-2"}


@pytest.mark.parametrize(
    "steps, stop_at",
    [
        # 3 or 4 batches an epoch, one step a call: stopped after 2 of epoch 3's calls.
        ({"steps_per_call": 1}, ("epoch 3/6", 2)),
        # 2 steps of 2 batches an epoch, one a call: stopped after epoch 3's first call.
        ({"steps_per_call": 1, "accumulation": 2}, ("epoch 3/6", 1)),
    ],
    ids=["steps", "accumulated"],
)
def test_a_fit_stopped_inside_an_epoch_resumes_there_exactly(tmp_path, steps, stop_at):
    model, data, split = _twelve_rows()
    config = classifier.TrainConfig(
        epochs=6, batch_size=3, learning_rate=0.01, seed=7, schedule="cosine", warmup_epochs=1,
        **steps,
    )  # fmt: skip
    whole = classifier.fit(model, data, split, config)

    saves = epoch_checkpoints.EpochCheckpoints(tmp_path / "fold", "k", every_seconds=0)
    reports = []

    def step_progress(stage, done, total, unit):
        reports.append((stage, done))

    with pytest.raises(preemption.Preempted, match="stopped in epoch 3 of 6, after"):
        classifier.fit(
            model, data, split, config, checkpoints=saves, step_progress=step_progress,
            stop=lambda: bool(reports) and reports[-1] == stop_at,
        )  # fmt: skip
    # One save, named by its optimizer step, inside epoch 3.
    (saved,) = (tmp_path / "fold" / "checkpoints").iterdir()
    assert 2 * 2 + stop_at[1] <= int(saved.name) <= 2 * 4 + stop_at[1]
    reports.clear()
    resumed = classifier.fit(
        model, data, split, config, checkpoints=saves, step_progress=step_progress
    )
    # It went on inside epoch 3, after the calls it had done (no report of epochs 1, 2).
    stages = {stage for stage, _ in reports}
    assert stages <= {"epoch 3/6", "epoch 4/6", "epoch 5/6", "epoch 6/6", "embedding"}
    assert all(done > stop_at[1] for stage, done in reports if stage == "epoch 3/6")
    assert resumed["history"] == whole["history"]  # epoch 3's training metrics included
    assert resumed["best_epoch"] == whole["best_epoch"]
    np.testing.assert_array_equal(resumed["test_logits"], whole["test_logits"])
    for a, b in zip(jax.tree.leaves(resumed["params"]), jax.tree.leaves(whole["params"])):
        np.testing.assert_array_equal(a, b)


def test_a_frozen_fit_reports_and_stops_while_embedding():
    model, data, _ = _twelve_rows()
    split = {"train": np.arange(8), "validation": np.array([8, 9]), "test": np.array([10, 11])}
    config = classifier.TrainConfig(batch_size=3, seed=7)
    reports = []
    whole = classifier.fit_frozen(
        model, data, split, config,
        step_progress=lambda stage, done, total, unit: reports.append((stage, done, total, unit)),
    )  # fmt: skip
    assert whole["test_logits"].shape == (2, 2)
    # 12 rows over 8 graphs: every row embedded once, in batches.
    assert {(stage, total, unit) for stage, _, total, unit in reports} == {("embedding", 12, "row")}
    done = [r[1] for r in reports]
    assert done == sorted(done) and done[-1] == 12 and len(done) > 1
    with pytest.raises(preemption.Preempted, match=f"after {done[0]} of 12 rows"):
        classifier.fit_frozen(model, data, split, config, stop=lambda: True)


def test_a_corrupt_saved_epoch_is_moved_aside_and_the_fit_starts_over(tmp_path):
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=8)
    data, vocab_size = _data(cfg)
    everything = np.arange(8)
    split = {"train": everything, "validation": everything, "test": everything}
    model = graph_probe.make_model(cfg, data.inputs, vocab_size, 2)
    config = classifier.TrainConfig(epochs=3, batch_size=4)
    saves = epoch_checkpoints.EpochCheckpoints(tmp_path / "fold", "k", every_seconds=0)
    with pytest.raises(preemption.Preempted):
        classifier.fit(model, data, split, config, checkpoints=saves, stop=lambda: True)
    (saved,) = (tmp_path / "fold" / "checkpoints").iterdir()
    assert saved.name == "2"  # after epoch 1, of 2 steps
    for path in saved.rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    epochs_run = []
    classifier.fit(model, data, split, config, checkpoints=saves,
                   progress=lambda r: epochs_run.append(r["epoch"]))  # fmt: skip
    assert epochs_run == [1, 2, 3]
    assert [p.name for p in (tmp_path / "fold" / "checkpoints_unrestorable").iterdir()] == ["2-0"]
