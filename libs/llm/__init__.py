"""The language-model engine shared by the generation and conversation workers (no gRPC here)."""
