"""Public LLM checkpoints (Hugging Face safetensors) in and out of codeprop's decoder.

- `hf`: `load` and `save` of a checkpoint directory, checked tensor by tensor; never pickle.
- `hf_config`: config.json <-> `DecoderConfig` for CodeShell, GPTBigCode, StarCoder2, Llama.
- `hf_layout`: tensor names and layouts (fused q/k/v, interleaved heads) per family.
"""
