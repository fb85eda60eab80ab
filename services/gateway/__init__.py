"""The gateway: authenticates API keys, applies traffic policy and forwards to compliance."""
