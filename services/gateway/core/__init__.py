"""Gateway domain logic: authentication, authorisation, admission, validation, routing (no gRPC)."""
