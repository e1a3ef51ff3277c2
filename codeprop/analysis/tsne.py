"""2-D t-SNE maps of embeddings (scikit-learn's Barnes-Hut t-SNE), seeded.

The map is a picture, not a measurement: distances between far-apart groups in it mean
little. Use the silhouette score (`codeprop.analysis.silhouette`) for numbers.

It runs on one thread: scikit-learn's Barnes-Hut gradient sums in an order that depends on
the number of OpenMP threads, so the same seed gave different maps on machines with
different core counts; and its threads wait actively, so next to another busy process an
OpenMP run took 20 s where one thread takes 1.3 s (devmap's 680 rows).
"""

from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE
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
    with threadpool_limits(limits=1):
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
