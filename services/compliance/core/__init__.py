"""Domain core of the compliance service: de-identification, model registry, proxy (no gRPC here)."""
