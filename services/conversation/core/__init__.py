"""Conversation domain: sessions, context fitting and chat turns (no gRPC here)."""
