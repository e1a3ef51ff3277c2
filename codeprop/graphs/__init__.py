"""Program graphs (numpy only): AST graphs (`ast`), transforms, padded batching."""
