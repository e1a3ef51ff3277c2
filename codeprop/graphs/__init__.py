"""Programs as graphs, numpy only (no JAX): the input side of the graph probes.

- `ast`: tree-sitter ASTs of C/C++/OpenCL as `jraph.GraphsTuple`s, node-type vocabulary.
- `compiler`: C/C++/OpenCL -> LLVM IR with clang 22 (ziglang), sandboxed with time and
  memory limits, cached by content; POJ-104's fix-ups.
- `llvm_ir`: a reader of textual LLVM IR (llvmlite for validation).
- `programl`: ProGraML graphs (control, data, call flow) of LLVM IR, their export and
  node-text vocabulary; `node_text`: inst2vec-style statement normalisation.
- `transforms`: edge selection and sorting; `batching`: padded batches with a fixed budget.
- `drawing`: a ProGraML graph drawn small (matplotlib).
"""
