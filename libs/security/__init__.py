"""Security primitives: API key format and hashing, roles and permissions, the server secret."""
