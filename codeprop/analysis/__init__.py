"""Analysis of embeddings: how well a representation separates the labels.

- `embedding_files`: a probe's ``embeddings.npz`` read and checked (rows, folds, model,
  parameters, benchmark and split).
- `silhouette`: the silhouette score (Euclidean or cosine), blocked for bounded memory.
- `tsne`: 2-D t-SNE maps of embeddings, seeded.
- `linear_probe`: logistic regression on frozen embeddings, per fold.
- `lm_losses`: a pretrained decoder's per-document losses on held-out and training
  samples of its corpus, with bootstrap intervals (is a loss gap more than chance?).
"""
