"""Models lowbit can load: the embedded default (`default`) and Hugging Face models (`hf`)."""
