"""Training: train state and jitted steps (`steps`), host-side metrics (`metrics`)."""
