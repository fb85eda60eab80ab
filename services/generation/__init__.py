"""Text-generation worker: streams tokens from one causal language model."""
