"""codeprop: code representations on code properties, and CodeShell-style code LLMs.

Packages, bottom layer first (each imports only the layers below it; a test checks it):

- `codeprop.data`: benchmark datasets (devmap, POJ-104): raw files, tfds builders, splits.
- `codeprop.graphs`: programs as graphs (numpy): tree-sitter ASTs, LLVM IR and ProGraML.
- `codeprop.tokens`: tokenizers (bytes, SentencePiece, tokenizer.json) and FIM.
- `codeprop.models`: flax modules: the decoder, GNNs, heads, logical axis names.
- `codeprop.checkpoints`: Hugging Face safetensors import/export of decoders.
- `codeprop.train`: the classifier loop and its batchers, steps, sharded pretraining,
  checkpointing, progress lines.
- `codeprop.probes`: the probe protocol and the graph and LLM probes (gin entry points).
- `codeprop.corpus`: the pretraining corpus pipeline (``python -m codeprop.corpus``).
- `codeprop.analysis`: embeddings: silhouette score, t-SNE maps, linear probe.
- `codeprop.recipes`: end-to-end runs (the pretraining demo).
- `codeprop.main`: the command line (``python -m codeprop.main``).
"""

__version__ = "0.1.0"
