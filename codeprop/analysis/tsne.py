"""2-D t-SNE maps of embeddings (scikit-learn's Barnes-Hut t-SNE), seeded.

The map is a picture, not a measurement: distances between far-apart groups in it mean
little. Use the silhouette score (`codeprop.analysis.silhouette`) for numbers.
"""

from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE

from codeprop.analysis import silhouette


def tsne(embeddings, labels=None, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """[N, 2] t-SNE coordinates; the same for the same seed.

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
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
