"""The comparison of representations from finished probe runs: measurements, report,
figures, claims, and arms left out with their reason."""

import dataclasses
import json
import pathlib
import shutil

import numpy as np
import pytest

from codeprop.analysis import comparison, comparison_figures, embedding_files, silhouette


@pytest.fixture(scope="module")
def compared(devmap_probe_run, devmap_bytes_run, tmp_path_factory):
    other = tmp_path_factory.mktemp("other_split")
    shutil.copy(devmap_probe_run[0] / "results.json", other / "results.json")
    with np.load(devmap_probe_run[0] / "embeddings.npz") as data:
        np.savez(other / "embeddings.npz", **(dict(data) | {"split_seed": 7}))
    arms = {
        "AST + GCN": devmap_probe_run[0],
        "bag of bytes": devmap_bytes_run[0],
        "never run": other / "nothing",
        "other split": other,
    }
    return comparison.compare(arms, "devmap/amd", "kfold", 204)


def test_arms_that_cannot_be_compared_are_left_out_with_the_reason(compared):
    assert [a.name for a in compared["arms"]] == ["AST + GCN", "bag of bytes"]
    left = compared["left_out"]
    assert set(left) == {"never run", "other split"}
    assert "nothing/results.json: missing" in left["never run"]
    assert "embeddings.npz: split_seed is 7, not 204" in left["other split"]


def test_every_arm_is_measured_from_its_folds_models(compared, devmap_probe_run):
    gcn, bag = compared["arms"]
    assert (gcn.kind, gcn.trained, bag.kind, bag.trained) == ("structured", True, "baseline", False)
    file = embedding_files.load(devmap_probe_run[0] / "embeddings.npz")
    per_fold = []
    for f in range(2):
        _, x, labels = file.fold_rows(f)
        assert len(x) == 680  # every example, embedded by fold f's model
        per_fold.append(silhouette.silhouette_score(x, labels))
    assert gcn.metrics["silhouette"] == pytest.approx(np.mean(per_fold), abs=1e-12)
    assert gcn.metrics["silhouette_std"] == pytest.approx(np.std(per_fold), abs=1e-12)
    results = devmap_probe_run[1]
    assert gcn.metrics["accuracy"] == results["aggregate"]["accuracy"]["mean"]
    assert gcn.metrics["num_params"] == results["aggregate"]["num_params"]
    assert 0.5 < gcn.metrics["linear_probe_accuracy"] <= 1.0
    # A frozen representation's accuracy is its linear probe's.
    assert bag.metrics["linear_probe_accuracy"] == bag.metrics["accuracy"]
    xy, labels = gcn.tsne
    assert xy.shape == (680, 2) and set(labels) == {0, 1}


def test_report_and_figures(compared, tmp_path):
    figures = comparison_figures.write_figures(compared, tmp_path)
    assert sorted(figures.values()) == sorted(
        ["accuracy.png", "accuracy_per_parameter.png", "silhouette.png", "tsne.png"]
    )
    for name in figures.values():
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    text = comparison.markdown(compared, figures)
    assert text.count("| AST + GCN | structured | yes |") == 1
    assert "| bag of bytes | baseline | no |" in text
    assert "| ProGraML (published) | 86.6 |" in text
    assert "- **never run**: EmbeddingFileError:" in text and "![t-SNE](tsne.png)" in text
    saved = json.loads(json.dumps(comparison.as_json(compared), default=float))
    assert [a["name"] for a in saved["arms"]] == ["AST + GCN", "bag of bytes"]


def test_measurements_are_kept_and_redone_when_a_run_changes(devmap_bytes_run, tmp_path):
    arm = tmp_path / "bag"
    shutil.copytree(devmap_bytes_run[0], arm)
    (arm / comparison.CACHE).unlink(missing_ok=True)
    first = comparison.compare({"bag": arm}, "devmap/amd", "kfold")["arms"][0]
    assert not first.reused and (arm / comparison.CACHE).is_file()
    again = comparison.compare({"bag": arm}, "devmap/amd", "kfold")["arms"][0]
    assert again.reused and again.metrics == first.metrics
    np.testing.assert_array_equal(again.tsne[0], first.tsne[0])
    np.testing.assert_array_equal(again.tsne[1], first.tsne[1])
    # Another setting, or a run that changed: measured again.
    cosine = comparison.compare({"bag": arm}, "devmap/amd", "kfold", metric="cosine")["arms"][0]
    assert not cosine.reused and cosine.metrics["silhouette"] != first.metrics["silhouette"]
    results = json.loads((arm / "results.json").read_text())
    results["aggregate"]["accuracy"]["mean"] = 0.5
    (arm / "results.json").write_text(json.dumps(results))
    changed = comparison.compare({"bag": arm}, "devmap/amd", "kfold")
    assert not changed["arms"][0].reused and changed["arms"][0].metrics["accuracy"] == 0.5
    assert comparison.as_json(changed)["arms"][0]["measurements_reused"] is False


def _arm(name, kind, trained, accuracy, params, silhouette_value, representation="ast"):
    metrics = {
        "accuracy": accuracy,
        "num_params": params,
        "accuracy_per_param": accuracy / params,
        "silhouette": silhouette_value,
    }
    return comparison.Arm(name, pathlib.Path("."), kind, trained, name, representation, metrics)


def test_claims_take_trained_structured_against_fine_tuned_llms():
    arms = [
        _arm("GNN", "structured", True, 0.85, 10_000, 0.30, "programl"),
        _arm("LLM", "LLM", True, 0.70, 10_000_000, 0.02, "tokens"),
        _arm("frozen LLM", "LLM", False, 0.90, 10_000_000, 0.05, "tokens"),
    ]
    verdicts = {
        c["claim"].split(" ")[0] + " " + c["claim"].split(" ")[1]: c
        for c in comparison.claims({"benchmark": "devmap/amd", "arms": arms})
    }
    beats = verdicts["trained structured"]
    assert (
        beats["verdict"] == "confirmed" and "best frozen LLM: frozen LLM 90.0%" in beats["evidence"]
    )
    assert verdicts["structured models"]["verdict"] == "confirmed"
    assert "1,214x" in verdicts["structured models"]["evidence"]
    assert verdicts["LLM silhouettes"]["verdict"] == "confirmed"
    better = arms[1].metrics | {"accuracy": 0.9, "silhouette": 0.2}
    arms[1] = dataclasses.replace(arms[1], metrics=better)
    checked = comparison.claims({"benchmark": "devmap/amd", "arms": arms})
    assert [c["verdict"] for c in checked] == ["not confirmed", "confirmed", "not confirmed"]
    assert comparison.claims({"benchmark": "devmap/amd", "arms": arms[2:]})[0]["verdict"] == (
        "cannot check"
    )


def test_poj104_silhouette_claim():
    arms = [
        _arm("ProGraML", "structured", True, 0.95, 10_000, 0.05, "programl"),
        _arm("AST", "structured", True, 0.90, 10_000, -0.20, "ast"),
        _arm("LLM", "LLM", True, 0.93, 10_000_000, 0.02, "tokens"),
    ]
    (claim,) = [
        c for c in comparison.claims({"benchmark": "poj104", "arms": arms}) if "AST's" in c["claim"]
    ]
    assert (
        claim["verdict"] == "confirmed"
        and claim["evidence"] == "ProGraML +0.050, LLM +0.020, AST -0.200"
    )


def test_tsne_rows_are_seeded_classes_of_many():
    labels = np.repeat(np.arange(20), 3)
    fold_of = np.zeros((1, 60), np.int8)
    fold_of[0, :3] = -1  # class 0 has no input: never drawn
    file = embedding_files.EmbeddingFile(
        pathlib.Path("x"), None, None, fold_of, labels, None, None, "poj104", "ast", "m", "p", 0
    )
    rows = comparison.tsne_rows(file, 5, seed=3)
    assert len(np.unique(labels[rows])) == 5 and 0 not in labels[rows] and len(rows) == 15
    assert (np.bincount(labels[comparison.tsne_rows(file, 5, 3, per_class=2)]) <= 2).all()
    assert (rows == comparison.tsne_rows(file, 5, seed=3)).all()
    assert not np.array_equal(rows, comparison.tsne_rows(file, 5, seed=4))
