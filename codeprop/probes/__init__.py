"""Probes: representations of code scored on code properties, under one protocol.

- `protocol`: splits, folds, aux inputs, fold records and result files, shared by all.
- `graph_probe`: `run_graph_probe`, AST + GCN or ProGraML + R-GCN (gin entry point).
- `llm_probe`: `run_llm_probe`, a decoder with a classification head (gin entry point).
- `report`: aggregation and tables; `references`: published numbers of other systems.
- `figures`: accuracy per fold, embeddings and training curves (matplotlib).
"""
