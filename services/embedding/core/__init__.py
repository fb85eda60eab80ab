"""Embedding domain: model sources and loading, the dynamic batcher, the embedder (no gRPC here)."""
