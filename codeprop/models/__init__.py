"""Models (flax linen): graph neural networks (`gnn`)."""
