"""The baselines of the comparison: random-init GNNs, frozen decoders, bags of features."""

import jax
import numpy as np
import pytest

from codeprop.analysis import comparison
from codeprop.checkpoints import hf
from codeprop.data import devmap
from codeprop.graphs import ast, programl
from codeprop.models import decoder, gnn, heads
from codeprop.probes import features_probe, graph_probe, llm_probe
from codeprop.tokens import tokenization
from codeprop.train import boosted_head, classifier

CONFIG = decoder.tiny(vocab_size=263).replace(embed_dim=32, mlp_dim=64, num_layers=2)


def _fold_shapes(workdir, folds, dim):
    with np.load(workdir / "embeddings.npz") as data:
        assert data["fold_embeddings"].shape == (folds, 680, dim)
        assert data["fold_of"].shape == (folds, 680)
        # Every example is in a split of every fold: training, validation or test.
        assert (data["fold_of"] >= 0).all() and np.isfinite(data["fold_embeddings"]).all()
        return {k: data[k] for k in data.files}


def test_bag_of_node_types_counts_the_grammars_types(devmap_amd, raw_dir, tmp_path):
    results = features_probe.run_features_probe(
        workdir=tmp_path, benchmark="devmap/amd", max_folds=2, raw_dir=str(raw_dir)
    )
    fold = results["folds"][0]
    vocab = ast.NodeTypeVocab.of_grammar("opencl")
    assert [f["vocab_size"] for f in results["folds"]] == [len(vocab)] * 2
    data = _fold_shapes(tmp_path, 2, len(vocab))
    built = graph_probe.build_ast_graphs(devmap_amd)
    # Row 0's embedding is log(1 + count) of its kernel's node types; the total count is
    # its number of nodes, none of them out of the grammar's vocabulary (column 0).
    graph = built["graphs"][built["graph_of"][0]]
    counts = np.expm1(data["fold_embeddings"][1, 0].astype(np.float64))
    assert round(counts.sum()) == int(graph.n_node[0]) and counts[0] == 0
    names = dict(zip(vocab.names, counts, strict=True))
    assert round(names["function_definition"]) >= 1
    assert fold["best_epoch"] == 0 and fold["regularisation"] in (0.01, 0.1, 1.0, 10.0)
    assert fold["num_params"] == fold["vocab_size"] + 1  # binary logistic regression
    assert results["model"] == "bag of ast node types (linear head)"
    # Better than always answering the majority class (static mapping, 58.8%).
    assert results["aggregate"]["pooled_accuracy"] > 0.6


def test_bag_of_bytes_with_aux_inputs(raw_dir, tmp_path):
    results = features_probe.run_features_probe(
        workdir=tmp_path,
        benchmark="devmap/amd",
        features="tokens",
        max_folds=1,
        aux_inputs=True,
        raw_dir=str(raw_dir),
    )
    (fold,) = results["folds"]
    assert fold["vocab_size"] == 263 and fold["num_params"] == 263 + 2 + 1
    assert results["model"].endswith("+ aux inputs") and "speedup_mean" in fold
    with pytest.raises(ValueError, match="unknown features"):
        features_probe.run_features_probe(workdir=tmp_path, benchmark="devmap/amd", features="x")


def test_random_init_gcn_is_its_initialisation_read_by_a_linear_head(raw_dir, tmp_path):
    model = gnn.GCNConfig(hidden_dim=16, embed_dim=16)
    kwargs = dict(benchmark="devmap/amd", model=model, max_folds=1, raw_dir=str(raw_dir))
    # The number of epochs does not matter: nothing is trained.
    a = graph_probe.run_graph_probe(
        workdir=tmp_path / "a", train=classifier.TrainConfig(epochs=1), frozen=True, **kwargs
    )
    b = graph_probe.run_graph_probe(
        workdir=tmp_path / "b", train=classifier.TrainConfig(epochs=7), frozen=True, **kwargs
    )
    ea, eb = _fold_shapes(tmp_path / "a", 1, 16), _fold_shapes(tmp_path / "b", 1, 16)
    np.testing.assert_array_equal(ea["fold_embeddings"], eb["fold_embeddings"])
    assert a["folds"][0]["accuracy"] == b["folds"][0]["accuracy"]
    assert a["model"] == "GCN (random init, linear head)" and a["settings"]["frozen"]
    vocab = a["folds"][0]["vocab_size"]
    encoder = vocab * 16 + (16 * 16 + 16) * 2  # node embedding and two convolutions
    assert a["folds"][0]["num_params"] == encoder + 16 + 1


def test_frozen_checkpoint_embeddings_are_the_checkpoints(devmap_amd, raw_dir, tmp_path):
    params = decoder.init_params(CONFIG, jax.random.key(5))
    hf.save(CONFIG, params, tmp_path / "ckpt", "codeshell")
    results = llm_probe.run_llm_probe(
        workdir=tmp_path / "run",
        benchmark="devmap/amd",
        train=classifier.TrainConfig(epochs=3, batch_size=32),
        checkpoint=str(tmp_path / "ckpt"),
        max_tokens=64,
        pooling="mean",
        max_folds=1,
        frozen=True,
        raw_dir=str(raw_dir),
    )
    assert results["model"] == "decoder (checkpoint, frozen, linear head, mean pooling)"
    assert results["folds"][0]["num_params"] == decoder.num_params(params) + 32 + 1
    data = _fold_shapes(tmp_path / "run", 1, 32)
    # Row 0's embedding is the checkpoint's mean-pooled final hidden state of its kernel.
    tok = tokenization.load("bytes")
    text = devmap_amd.examples[0]["normalized_source"]
    tokens = np.asarray([tok.encode(text)[:64]], np.int32)
    model = heads.DecoderClassifier(CONFIG, 2, pad_id=tok.pad_id, pooling="mean")
    head = {"score": {"kernel": np.zeros((32, 2), np.float32)}}
    want = model.apply({"params": {"decoder": params, **head}}, tokens, method="embed")
    got = data["fold_embeddings"][0, 0]
    np.testing.assert_allclose(got, np.asarray(want)[0], rtol=2e-4, atol=2e-5)


def test_the_aux_inputs_alone_read_by_boosted_trees_and_by_a_line(raw_dir, tmp_path):
    runs = {
        head: features_probe.run_features_probe(
            workdir=tmp_path / head,
            benchmark="devmap/amd",
            features="none",
            head=head,
            max_folds=2,
            aux_inputs=True,
            raw_dir=str(raw_dir),
        )
        for head in features_probe.HEADS
    }
    trees, line = runs["boosted_trees"], runs["linear"]
    assert trees["model"] == "no program features (boosted trees head) + aux inputs"
    for fold in trees["folds"]:
        setting = dict(fold["head_setting"])
        assert setting.pop("min_samples_leaf") == 20 and setting in boosted_head.GRID
        assert fold["num_params"] > 100
        assert fold["vocab_size"] == 0 and "regularisation" not in fold
    assert [f["num_params"] for f in line["folds"]] == [3, 3]  # two inputs and a bias
    # Thresholds on the transfer size per work-group size beat one line through them.
    assert trees["aggregate"]["pooled_accuracy"] > line["aggregate"]["pooled_accuracy"] + 0.05
    embeddings = np.load(tmp_path / "boosted_trees" / "embeddings.npz")["embeddings"]
    assert embeddings.shape == (680, 0)
    # Leaves of at least 300 rows: no split fits in a fold's 550 training rows, so each
    # of the 50 trees is one leaf.
    aux_alone = {
        "benchmark": "devmap/amd",
        "features": "none",
        "head": "boosted_trees",
        "max_folds": 1,
        "aux_inputs": True,
        "raw_dir": str(raw_dir),
    }
    stumps = features_probe.run_features_probe(
        workdir=tmp_path / "leaves",
        tree_grid=({"learning_rate": 0.1, "max_depth": 3, "max_iter": 50},),
        tree_min_samples_leaf=300,
        **aux_alone,
    )
    assert stumps["folds"][0]["head_setting"]["min_samples_leaf"] == 300
    assert stumps["folds"][0]["num_params"] == 50
    two = tuple({"learning_rate": 0.1, "max_depth": 3, "max_iter": n} for n in (20, 30))
    # Two settings averaged: both models kept, the result says so.
    averaged = features_probe.run_features_probe(
        workdir=tmp_path / "mean",
        tree_grid=two,
        tree_min_samples_leaf=300,
        tree_combine="mean",
        **aux_alone,
    )
    assert averaged["folds"][0]["head_setting"] == {"combine": "mean"}
    assert averaged["folds"][0]["num_params"] == 20 + 30
    assert averaged["settings"]["tree_combine"] == "mean"
    nested = features_probe.run_features_probe(
        workdir=tmp_path / "nested", tree_grid=two, tree_choose_on="training_holdout", **aux_alone
    )
    assert nested["settings"]["tree_choose_on"] == "training_holdout"
    assert nested["folds"][0]["head_setting"]["max_iter"] in (20, 30)
    with pytest.raises(ValueError, match="unknown tree_choose_on 'test'"):
        features_probe.run_features_probe(
            workdir=tmp_path, benchmark="devmap/amd", tree_choose_on="test"
        )
    with pytest.raises(ValueError, match="unknown tree_combine 'vote'"):
        features_probe.run_features_probe(
            workdir=tmp_path, benchmark="devmap/amd", tree_combine="vote"
        )
    with pytest.raises(ValueError, match="tree_min_samples_leaf must be at least 1, not 0"):
        features_probe.run_features_probe(
            workdir=tmp_path, benchmark="devmap/amd", tree_min_samples_leaf=0
        )
    with pytest.raises(ValueError, match="auxiliary inputs alone: set aux_inputs"):
        features_probe.run_features_probe(workdir=tmp_path, benchmark="devmap/amd", features="none")
    with pytest.raises(ValueError, match="unknown head 'forest'"):
        features_probe.run_features_probe(
            workdir=tmp_path, benchmark="devmap/amd", features="none", head="forest"
        )


IR = """
define i32 @f(ptr %p, i32 %n) {
  %a = load i32, ptr %p
  %b = load i32, ptr %p
  %c = add i32 %a, %b
  %d = mul i32 %c, %n
  ret i32 %d
}
"""


def test_bag_of_programl_node_texts_counts_each_graphs_texts(raw_dir, tmp_path):
    graphs = [programl.from_ir(IR).to_graphs_tuple()]
    graphs.append(programl.from_ir(IR.replace("mul", "sub")).to_graphs_tuple())
    counts, vocab = features_probe.node_text_histograms(graphs)
    assert counts.shape == (2, len(vocab)) and counts[:, 0].sum() == 0  # no unknown texts
    assert counts[:, vocab.index["load"]].tolist() == [2, 2]
    assert counts[:, vocab.index["mul"]].tolist() == [1, 0]
    assert counts[:, vocab.index["sub"]].tolist() == [0, 1]
    assert counts.sum(axis=1).tolist() == [g.nodes["text"].size for g in graphs]
    results = features_probe.run_features_probe(
        workdir=tmp_path,
        benchmark="devmap/amd",
        features="programl_node_texts",
        max_folds=1,
        aux_inputs=True,
        raw_dir=str(raw_dir),
    )
    (fold,) = results["folds"]
    assert fold["vocab_size"] > 30 and fold["num_params"] == fold["vocab_size"] + 2 + 1
    assert results["representation"] == "programl"
    assert results["aggregate"]["pooled_accuracy"] > 0.7  # the majority class: 58.8%


def test_static_features_are_the_csv_counts_and_grewes_ratios(devmap_amd, raw_dir, tmp_path):
    ex = devmap_amd.examples[0]  # binomial_options: comp 98, mem 13, transfer 2048, ...
    row = devmap.static_features([ex])[0]
    assert row[:6].tolist() == [98, 8, 13, 11, 2, 0]
    assert row[6:].tolist() == [2048 / (98 + 13), 2 / 13, 11 / 13 * 255, 98 / 13]
    with pytest.raises(ValueError, match="binomial_options\\): mem = 0"):
        devmap.static_features([ex | {"mem": 0}])
    # Side by side with ProGraML's node texts: 10 columns more, one input per example.
    results = features_probe.run_features_probe(
        workdir=tmp_path,
        benchmark="devmap/amd",
        features="static_features+programl_node_texts",
        max_folds=1,
        aux_inputs=True,
        raw_dir=str(raw_dir),
    )
    (fold,) = results["folds"]
    texts = features_probe.run_features_probe(
        workdir=tmp_path / "texts",
        benchmark="devmap/amd",
        features="programl_node_texts",
        max_folds=1,
        raw_dir=str(raw_dir),
    )
    assert fold["vocab_size"] == texts["folds"][0]["vocab_size"] + 10
    assert results["model"] == (
        "static features + bag of programl node texts (linear head) + aux inputs"
    )
    assert results["representation"] == "static+programl"
    assert comparison.kind_of(results) == "baseline"
    assert results["data"]["static_features.static_features"]["rows"] == 680
    assert "- programl_node_texts.graphs.examples: 680" in (tmp_path / "results.md").read_text()
    with np.load(tmp_path / "embeddings.npz") as data:
        assert np.allclose(data["fold_embeddings"][0, 0, :10], np.log1p(row), atol=1e-5)
    with pytest.raises(ValueError, match="unknown features 'none\\+tokens'"):
        features_probe.run_features_probe(
            workdir=tmp_path, benchmark="devmap/amd", features="none+tokens", aux_inputs=True
        )
