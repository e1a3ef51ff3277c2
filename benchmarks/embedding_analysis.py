"""Embedding analysis speed: codeprop's silhouette (float32 distances, the default, and
float64) against scikit-learn's on POJ-104-sized embeddings (10,400 x 256, 104 labels),
and t-SNE with scikit-learn against openTSNE on the sizes the comparison report maps
(devmap's 680 rows, and 2,000), in one run; both t-SNEs on one thread
(`codeprop.analysis.tsne` runs openTSNE so).

    .venv/bin/python benchmarks/embedding_analysis.py --out /tmp/bench/embedding_analysis.json

The embeddings are seeded random ones with a label-dependent shift (so the silhouette is
not trivially 0); the implementations take turns, best of `--repeats`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import timing
from sklearn.manifold import TSNE as SklearnTSNE
from sklearn.metrics import silhouette_score as sklearn_silhouette
from threadpoolctl import threadpool_limits

from codeprop.analysis import silhouette, tsne


def embeddings(n: int, dim: int, num_labels: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % num_labels)
    return rng.normal(size=(n, dim)) + 0.05 * labels[:, None], labels


def sklearn_tsne(x: np.ndarray) -> np.ndarray:
    """scikit-learn's Barnes-Hut t-SNE, one thread, as codeprop ran it before openTSNE."""
    with threadpool_limits(limits=1):
        return SklearnTSNE(2, perplexity=30.0, init="pca", random_state=0).fit_transform(x)


def best(fn, repeats: int) -> tuple[float, object]:
    seconds, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        seconds = min(seconds, time.perf_counter() - start)
    return seconds, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    x, labels = embeddings(10_400, 256, 104)
    ours_s, ours = best(lambda: silhouette.silhouette_score(x, labels), args.repeats)
    ours64_s, ours64 = best(
        lambda: silhouette.silhouette_score(x, labels, dtype="float64"), args.repeats
    )
    theirs_s, theirs = best(lambda: sklearn_silhouette(x, labels), args.repeats)
    result = {
        "machine": timing.machine(),
        "silhouette": {
            "shape": list(x.shape),
            "codeprop_seconds": round(ours_s, 3),
            "codeprop_float64_seconds": round(ours64_s, 3),
            "sklearn_seconds": round(theirs_s, 3),
            "speedup": round(theirs_s / ours_s, 2),
            "speedup_float64": round(theirs_s / ours64_s, 2),
            "abs_difference": float(abs(ours - theirs)),
            "abs_difference_float64": float(abs(ours64 - theirs)),
        },
        "tsne": [],
    }
    for n in (680, 2000):
        x, labels = embeddings(n, 64, 2, seed=n)
        sk_s, _ = best(lambda x=x: sklearn_tsne(x), args.repeats)
        open_s, _ = best(lambda x=x, labels=labels: tsne.tsne(x, labels, seed=0), args.repeats)
        result["tsne"].append(
            {"points": n, "sklearn_seconds": round(sk_s, 2), "opentsne_seconds": round(open_s, 2)}
        )
    timing.emit(result, args.out)


if __name__ == "__main__":
    main()
