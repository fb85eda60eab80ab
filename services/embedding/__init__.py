"""Embedding worker: sentence-transformers behind dynamic batching, served over gRPC."""
