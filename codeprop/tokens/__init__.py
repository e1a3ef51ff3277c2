"""Text to token ids: the input side of the LLM probes and of pretraining.

- `tokenization`: byte, SentencePiece and tokenizer.json tokenizers behind one interface,
  training the SentencePiece code tokenizer (`train_code_tokenizer`) and its compression
  table against GPT-2.
- `fim`: fill-in-the-middle sentinels and arrangement (PSM/SPM), infilling prompts.
"""
