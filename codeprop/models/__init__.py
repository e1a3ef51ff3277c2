"""Models (flax linen).

- `decoder`: the CodeShell-style decoder (GQA, RoPE) and its frozen `DecoderConfig`;
  `attention`, `blockwise_attention`, `rope`, `losses`: its parts and fused kernels.
- `generation`: cached autoregressive decoding (greedy, temperature, top-p).
- `gnn`: GCN (`graph_conv`, `tree_conv`); `rgcn`: the relational GCN for ProGraML.
- `heads`: classification heads (pooled decoder states, graph readouts).
- `axes`: every logical axis name and the rules that map them to the mesh.
"""
