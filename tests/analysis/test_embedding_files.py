"""Embedding files describe themselves and are checked when read."""

import numpy as np
import pytest

from codeprop.analysis import embedding_files


def test_a_probe_writes_what_the_loader_reads(devmap_probe_run):
    workdir, results = devmap_probe_run
    file = embedding_files.load(workdir / "embeddings.npz", "devmap/amd", "kfold", 204)
    assert (file.benchmark, file.representation, file.model) == ("devmap/amd", "ast", "GCN")
    assert file.num_params.tolist() == [f["num_params"] for f in results["folds"]]
    rows, x, labels = file.tested_rows()
    assert len(rows) == 136 and x.shape == (136, 36) and set(file.test_fold[rows]) == {0, 1}
    assert (labels == np.array(file.labels)[rows]).all()
    split = file.split(1)
    assert [len(split[k]) for k in ("train", "validation", "test")] == [551, 61, 68]
    assert (split["test"] == np.flatnonzero(file.test_fold == 1)).all()
    rows, x, _ = file.fold_rows(1)
    assert len(rows) == 680 and np.isfinite(x).all()


def _rewrite(path, target, **changes):
    with np.load(path) as data:
        fields = dict(data) | changes
    np.savez(target, **{k: v for k, v in fields.items() if v is not None})
    return target


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"test_fold": None}, "no test_fold"),
        ({"labels": np.zeros(5)}, "do not describe the same examples"),
        ({"benchmark": "poj104"}, "benchmark is 'poj104', not 'devmap/amd'"),
        ({"fold_of": np.zeros((2, 680), np.int8)}, "fold 0's test rows in fold_of differ"),
        ({"fold_embeddings": np.zeros((1, 680, 36))}, "do not describe 2 folds of 680"),
        ({"fold_embeddings": np.full((2, 680, 36), np.nan)}, "1360 .fold, example. pairs"),
    ],
)
def test_bad_files_are_named(devmap_probe_run, tmp_path, changes, message):
    workdir, _ = devmap_probe_run
    bad = _rewrite(workdir / "embeddings.npz", tmp_path / "bad.npz", **changes)
    with pytest.raises(embedding_files.EmbeddingFileError, match=f"bad.npz: .*{message}"):
        embedding_files.load(bad, benchmark="devmap/amd")


def test_a_tested_row_without_an_embedding_is_an_error(devmap_probe_run, tmp_path):
    workdir, _ = devmap_probe_run
    with np.load(workdir / "embeddings.npz") as data:
        x, fold = data["embeddings"].copy(), data["test_fold"]
    x[np.flatnonzero(fold >= 0)[0]] = np.nan
    bad = _rewrite(workdir / "embeddings.npz", tmp_path / "nan.npz", embeddings=x)
    with pytest.raises(embedding_files.EmbeddingFileError, match="1 tested examples have NaN"):
        embedding_files.load(bad)
    with pytest.raises(embedding_files.EmbeddingFileError, match="cannot read"):
        embedding_files.load(tmp_path / "missing.npz")
