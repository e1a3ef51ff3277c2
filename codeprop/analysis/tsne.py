"""2-D t-SNE maps of embeddings (openTSNE's FFT-accelerated t-SNE), seeded.

The map is a picture, not a measurement: distances between far-apart groups in it mean
little. Use the silhouette score (`codeprop.analysis.silhouette`) for numbers.

openTSNE was chosen over scikit-learn's Barnes-Hut t-SNE by measured speed
(`benchmarks/embedding_analysis.py`: 1.3 s against 2.3 s for devmap's 680 rows, 6.0 s
against 9.7 s for 2,000, one thread each). It runs on one thread: multi-threaded t-SNE
sums its gradients in an order that depends on the thread count, so the same seed would
give different maps on machines with different core counts, and its threads wait actively,
which made scikit-learn's 15 times slower next to another busy process.
"""

from __future__ import annotations

import numpy as np
from openTSNE import TSNE
from threadpoolctl import threadpool_limits

from codeprop.analysis import silhouette


def tsne(embeddings, labels=None, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """[N, 2] t-SNE coordinates; the same for the same seed on any machine.

    Args:
      embeddings: [N, D], finite.
      labels: [N] or None; only checked against the embeddings' length.
      perplexity: effective neighbours per point (clipped below N).
      seed: the initialisation (PCA, then seeded optimisation).
    """
    x = np.asarray(embeddings, np.float64)
    if labels is not None:
        x, _ = silhouette.check_embeddings(x, labels)
    elif not np.isfinite(x).all():
        raise ValueError("embeddings hold NaN or infinite values")
    perplexity = min(perplexity, (len(x) - 1) / 3)
    model = TSNE(
        n_components=2, perplexity=perplexity, initialization="pca", random_state=seed, n_jobs=1
    )
    with threadpool_limits(limits=1):
        return np.asarray(model.fit(x))
