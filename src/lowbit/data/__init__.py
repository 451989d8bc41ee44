"""Text data: the Shakespeare corpus, a local BPE tokenizer and fixed token windows."""
