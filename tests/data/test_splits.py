import numpy as np
import pytest

from codeprop.data import splits

# devmap-amd's class balance: 280 GPU, 400 CPU.
LABELS = np.array([1] * 280 + [0] * 400)


def test_kfold_partitions_and_stratifies():
    folds = splits.kfold(LABELS, k=10, seed=204)
    assert len(folds) == 10
    tests = np.concatenate([f["test"] for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(LABELS)))  # Each row tested once.
    for f in folds:
        assert len(f["test"]) == 68
        assert np.bincount(LABELS[f["test"]]).tolist() == [40, 28]
        parts = [set(f[k].tolist()) for k in ("train", "validation", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert sum(len(p) for p in parts) == len(LABELS)
        # 10% of the 612 training rows, stratified: 36 CPU + 25 GPU (largest remainders).
        assert len(f["validation"]) == 61
        assert abs(LABELS[f["validation"]].mean() - LABELS.mean()) < 0.02


def test_kfold_is_deterministic_and_seeded():
    a = splits.kfold(LABELS, k=10, seed=1)
    b = splits.kfold(LABELS, k=10, seed=1)
    c = splits.kfold(LABELS, k=10, seed=2)
    assert all(np.array_equal(x["test"], y["test"]) for x, y in zip(a, b))
    assert any(not np.array_equal(x["test"], y["test"]) for x, y in zip(a, c))


def test_holdout_80_10_10():
    split = splits.holdout(LABELS, (0.8, 0.1, 0.1), seed=0)
    assert [len(split[k]) for k in ("train", "validation", "test")] == [544, 68, 68]
    assert np.bincount(LABELS[split["test"]]).tolist() == [40, 28]


def test_poj104_three_one_one_per_class():
    labels = np.repeat(np.arange(104), 500)
    split = splits.holdout(labels, (0.6, 0.2, 0.2), seed=0)
    for name, count in (("train", 300), ("validation", 100), ("test", 100)):
        assert np.bincount(labels[split[name]], minlength=104).tolist() == [count] * 104
    assert len(np.unique(np.concatenate(list(split.values())))) == 52_000


def test_bad_fractions():
    with pytest.raises(ValueError, match="summing to 1"):
        splits.holdout(LABELS, (0.5, 0.1, 0.1))


def _synthetic_kernels() -> tuple[np.ndarray, np.ndarray]:
    """40 kernels of 1 to 5 rows each (devmap's shape), labels mixed within some."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 6, size=40)
    groups = np.repeat([f"kernel-{g:02d}" for g in range(40)], sizes)
    labels = (rng.random(len(groups)) < 0.4).astype(int)
    return labels, groups


def test_grouped_kfold_keeps_each_group_in_one_part():
    labels, groups = _synthetic_kernels()
    folds = splits.grouped_kfold(labels, groups, k=5, seed=3)
    tests = np.concatenate([f["test"] for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(labels)))  # Each row tested once.
    for f in folds:
        assert sum(len(f[k]) for k in ("train", "validation", "test")) == len(labels)
        kernels = [set(groups[f[k]].tolist()) for k in ("train", "validation", "test")]
        assert not (kernels[0] & kernels[1] or kernels[0] & kernels[2] or kernels[1] & kernels[2])
        assert len(f["validation"]) > 0 and len(f["train"]) > len(f["test"])
    sizes = [len(f["test"]) for f in folds]
    assert max(sizes) - min(sizes) <= 5  # Balanced to within one kernel's rows.
    assert splits.of_protocol(labels, "grouped_kfold", 5, 3, groups=groups)[2]["test"].tolist() == (
        folds[2]["test"].tolist()
    )


def test_grouped_kfold_is_seeded_and_checks_its_input():
    labels, groups = _synthetic_kernels()
    a = splits.grouped_kfold(labels, groups, k=5, seed=1)
    b = splits.grouped_kfold(labels, groups, k=5, seed=1)
    c = splits.grouped_kfold(labels, groups, k=5, seed=2)
    assert all(np.array_equal(x["test"], y["test"]) for x, y in zip(a, b))
    assert any(not np.array_equal(x["test"], y["test"]) for x, y in zip(a, c))
    with pytest.raises(ValueError, match="3 groups cannot fill 5 folds"):
        splits.grouped_kfold([0, 1, 0], ["a", "b", "c"], k=5)
    with pytest.raises(ValueError, match="needs the examples' groups"):
        splits.of_protocol(labels, "grouped_kfold", 5)
