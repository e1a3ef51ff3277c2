import numpy as np
import pytest

from codeprop.data import benchmarks
from codeprop.graphs import ast, programl
from codeprop.models import ggnn, gnn, rgcn
from codeprop.probes import graph_probe, protocol, report
from codeprop.train import boosted_head, classifier


def test_make_splits_protocols():
    labels = np.repeat(np.arange(4), 50)
    assert len(protocol.make_splits(labels, "kfold", 5, seed=0)) == 5
    (holdout,) = protocol.make_splits(labels, "holdout", 10, seed=0)
    assert [len(holdout[k]) for k in ("train", "validation", "test")] == [160, 20, 20]
    (poj,) = protocol.make_splits(labels, "per_class_3_1_1", 10, seed=0)
    assert [len(poj[k]) for k in ("train", "validation", "test")] == [120, 40, 40]
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol.make_splits(labels, "loo", 10, seed=0)


def test_tree_mode_is_chosen_for_the_ast_tree_only():
    assert graph_probe.uses_tree(gnn.GCNConfig(edge_types=(ast.CHILD, ast.PARENT)))
    assert not graph_probe.uses_tree(gnn.GCNConfig(edge_types=(0, 1, 2)))
    g = ast.ast_graph("int f() { return 1; }", "c")
    vocab = ast.NodeTypeVocab.build([g], "c")
    g = vocab.encode(g, vocab.table("c"))
    with_siblings = gnn.GCNConfig(edge_types=(0, 1, 2))
    inputs = graph_probe.model_inputs(g, with_siblings)
    model = graph_probe.make_model(with_siblings, [inputs], len(vocab), 2)
    assert not model.tree and not model.symmetric  # Sibling edges are one-way.
    tree_inputs = graph_probe.model_inputs(g, gnn.GCNConfig())
    assert graph_probe.make_model(gnn.GCNConfig(), [tree_inputs], len(vocab), 2).tree


def test_aggregate_and_markdown():
    folds = [
        {
            "fold": i,
            "train": 8,
            "validation": 1,
            "test": 10,
            "accuracy": acc,
            "precision": 0.5,
            "recall": 0.5,
            "f1": 0.5,
            "num_params": 100,
            "best_epoch": 1,
            "best_validation_accuracy": 1.0,
        }
        for i, acc in enumerate([0.6, 0.8])
    ]
    agg = report.aggregate(folds)
    assert agg["accuracy"]["mean"] == pytest.approx(0.7)
    assert agg["accuracy"]["std"] == pytest.approx(0.1)
    assert agg["pooled_accuracy"] == pytest.approx(0.7)
    results = {
        "benchmark": "poj104",
        "representation": "ast",
        "model": "GCN",
        "protocol": "per_class_3_1_1",
        "num_folds_run": 2,
        "split_seed": 0,
        "folds": folds,
        "aggregate": agg,
        "data": {"graphs": {"examples": 20}},
    }
    md = report.markdown(results)
    assert "| accuracy (%) | 70.0 ± 10.0 |" in md
    assert "| ProGraML (published) | 96.6 |" in md
    assert "accuracy (%)" in report.terminal(results)


def test_programl_graphs_count_programs_without_a_graph(tmp_path):
    programs = [
        'void main() { int a, b; scanf("%d%d", &a, &b); printf("%d", a + b); }',
        "int main() { int n; cin >> n; cout << n * n << endl; return 0; }",
        "int main( {",  # Does not compile.
        "int main() { int n; cin >> n; cout << n * n << endl; return 0; }",  # A duplicate.
    ]
    examples = [{"id": str(i), "text": t, "label": i % 2} for i, t in enumerate(programs)]
    bench = benchmarks.Benchmark("poj104", examples, 2, {})
    built = graph_probe.build_programl_graphs(bench, cache_dir=str(tmp_path))
    assert built["graph_of"].tolist() == [0, 1, -1, 1]
    report = built["report"]
    assert report["examples_without_graph"] == 1 and report["distinct_inputs"] == 3
    assert report["outcomes"] == {"graph": 2, "compile error": 1}
    assert report["compiled_by"] == {"c++98 (C headers)": 1, "c++98": 1}
    assert list(report["failures"]) == ["compile error"]
    assert list(report["failures"]["compile error"]) == ["program 2"]
    assert "error" in report["failures"]["compile error"]["program 2"]
    capped = graph_probe.build_programl_graphs(bench, cache_dir=str(tmp_path), max_nodes=40)
    assert capped["report"]["outcomes"]["over 40 nodes"] >= 1


def _programl_probe(tmp_path, benchmark="devmap/amd", epochs=1, **kwargs):
    return graph_probe.run_graph_probe(
        workdir=tmp_path,
        benchmark=benchmark,
        model=kwargs.pop("model", rgcn.RGCNConfig(hidden_dim=8, embed_dim=16)),
        train=classifier.TrainConfig(epochs=epochs, learning_rate=0.01),
        representation="programl",
        **kwargs,
    )


def test_programl_probe_on_devmap_end_to_end(raw_dir, tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    results = _programl_probe(
        tmp_path, epochs=2, max_folds=1, aux_inputs=True, raw_dir=str(raw_dir)
    )
    assert results["model"] == "R-GCN + aux inputs"
    assert results["data"]["graphs"]["outcomes"] == {"graph": 669}
    assert results["data"]["graphs"]["examples_without_graph"] == 0
    (fold,) = results["folds"]
    assert fold["test"] == 68 and fold["test_without_input"] == 0
    assert 0.0 <= fold["accuracy"] <= 1.0
    saved = np.load(tmp_path / "embeddings.npz")
    assert saved["embeddings"].shape == (680, 16)
    assert int((saved["test_fold"] == 0).sum()) == 68
    with pytest.raises(ValueError, match="takes a RGCNConfig"):
        _programl_probe(tmp_path, model=gnn.GCNConfig())


def test_programl_probe_with_statement_texts(raw_dir, tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    results = _programl_probe(
        tmp_path,
        "devmap/nvidia",
        max_folds=1,
        node_texts="statement",
        vocab_min_count=3,
        raw_dir=str(raw_dir),
    )
    assert results["settings"]["node_texts"] == "statement"
    # The vocabulary is the training fold's statements seen 3 times or more, plus every
    # short text they back off to.
    bench = benchmarks.load("devmap/nvidia", raw_dir=str(raw_dir))
    built = graph_probe.build_programl_graphs(bench, str(raw_dir), statements=True)
    split = protocol.make_splits(np.array(bench.labels), "kfold", 10, 204)[0]
    train = [built["graphs"][g] for g in np.unique(built["graph_of"][split["train"]])]
    vocab = programl.NodeTextVocab.build(train, 3, ("statement", "text"))
    short = {t for g in train for t in g.nodes["text"].tolist()}
    assert results["folds"][0]["vocab_size"] == len(vocab) > len(short) + 300
    with pytest.raises(ValueError, match="unknown node_texts"):
        _programl_probe(tmp_path, node_texts="full")


def test_programl_probe_with_digits(raw_dir, tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    bench = benchmarks.load("devmap/amd", raw_dir=str(raw_dir))
    built = graph_probe.build_programl_graphs(bench, str(raw_dir), number_width=12)
    with_number = sum(int((g.nodes["digits"] > 0).any(axis=1).sum()) for g in built["graphs"])
    constants = sum(int((g.nodes["node_type"] == programl.CONSTANT).sum()) for g in built["graphs"])
    # Every scalar literal has a number; globals, undef, vectors and expressions do not.
    assert (with_number, constants) == (13458, 13970)
    cfg = rgcn.RGCNConfig(hidden_dim=8, embed_dim=16, number_width=12)
    results = _programl_probe(tmp_path, max_folds=1, model=cfg, raw_dir=str(raw_dir))
    assert results["settings"]["model"]["number_width"] == 12
    assert 0.0 <= results["folds"][0]["accuracy"] <= 1.0
    # At its default the setting is left out, so that runs saved before it existed keep
    # their fold keys.
    plain = _programl_probe(tmp_path / "plain", max_folds=1, raw_dir=str(raw_dir))
    assert "number_width" not in plain["settings"]["model"]


def test_programl_probe_with_ggnn(raw_dir, tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    cfg = ggnn.GGNNConfig(hidden_dim=8, embed_dim=16, layer_timesteps=(1, 1))
    results = _programl_probe(
        tmp_path, max_folds=1, model=cfg, aux_inputs=True, raw_dir=str(raw_dir)
    )
    assert results["model"] == "GGNN + aux inputs"
    assert results["settings"]["model"]["layer_timesteps"] == [1, 1]
    assert results["folds"][0]["test"] == 68
    assert np.load(tmp_path / "embeddings.npz")["embeddings"].shape == (680, 16)


def test_programl_probe_with_a_tree_head_on_the_trained_embeddings(
    raw_dir, tfds_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    kwargs = {"epochs": 2, "max_folds": 1, "aux_inputs": True, "raw_dir": str(raw_dir)}
    leaves, combine = {"tree_min_samples_leaf": 5}, {"tree_combine": "mean"}
    trees = _programl_probe(tmp_path / "trees", tree_head=True, **leaves, **combine, **kwargs)
    plain = _programl_probe(tmp_path / "plain", **kwargs)
    assert trees["model"] == "R-GCN, boosted-trees head on its embeddings + aux inputs"
    assert trees["settings"]["tree_head"] and "tree_head" not in plain["settings"]
    assert trees["settings"] | leaves | combine == trees["settings"]
    (fold,), (plain_fold,) = trees["folds"], plain["folds"]
    assert fold["best_epoch"] == plain_fold["best_epoch"]
    assert fold["network_validation_accuracy"] == plain_fold["best_validation_accuracy"]
    assert fold["num_params"] > plain_fold["num_params"]  # the network's and the trees'
    # The trees read the same trained network's embeddings of the fold's rows (saved by
    # the plain run) with the aux inputs, and choose their setting on validation rows.
    bench = benchmarks.load("devmap/amd", raw_dir=str(raw_dir))
    labels = np.array(bench.labels)
    split = protocol.make_splits(labels, "kfold", 10, 204)[0]
    saved = np.load(tmp_path / "plain" / "folds" / "fold_000.npz")
    aux = protocol.aux_inputs_of(bench.examples, split["train"])
    grid = tuple(dict(s, min_samples_leaf=5) for s in boosted_head.GRID)
    again = classifier.read_by_boosted_head(
        saved["embeddings"], labels, aux, split, grid, combine="mean"
    )
    assert fold["head_setting"] == again["head_setting"] == {"combine": "mean"}
    assert fold["num_params"] == plain_fold["num_params"] + again["num_params"]
    assert fold["best_validation_accuracy"] == again["best_validation_accuracy"]
    predictions = again["test_logits"].argmax(-1)
    assert fold["accuracy"] == pytest.approx(np.mean(predictions == labels[split["test"]]))
    with pytest.raises(ValueError, match="tree_head reads one trained GNN"):
        _programl_probe(tmp_path, tree_head=True, frozen=True)
    with pytest.raises(ValueError, match="unknown tree_combine 'vote'"):
        _programl_probe(tmp_path, tree_head=True, tree_combine="vote")
    with pytest.raises(ValueError, match="unknown tree_choose_on 'test'"):
        _programl_probe(tmp_path, tree_head=True, tree_choose_on="test")


def test_grouped_kfold_on_devmap_holds_out_whole_kernels(devmap_amd):
    groups = protocol.groups_of(devmap_amd)
    labels = np.array(devmap_amd.labels)
    folds = protocol.make_splits(labels, "grouped_kfold", 10, 204, groups)
    kernels = np.array(groups)
    assert len(set(groups)) == 256  # devmap's 680 rows are 256 kernels.
    for f in folds:
        train = set(kernels[f["train"]].tolist())
        assert not train & set(kernels[f["test"]].tolist())
        assert not train & set(kernels[f["validation"]].tolist())
        # Balanced: each fold tests 68 +- 5 rows with a GPU share near the 41% overall.
        assert abs(len(f["test"]) - 68) <= 5
        assert abs(labels[f["test"]].mean() - labels.mean()) < 0.06
    with pytest.raises(ValueError, match="holds out whole devmap kernels"):
        protocol.make_splits(labels, "grouped_kfold", 10, 204, None)
