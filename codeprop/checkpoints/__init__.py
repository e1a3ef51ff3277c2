"""Import/export of public LLM checkpoints (Hugging Face safetensors) for codeprop's decoder."""
