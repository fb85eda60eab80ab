"""Conversation worker: multi-turn chat with owner-scoped server-side sessions."""
