"""Compliance proxy: de-identifies inputs and forwards only redacted text to the model workers."""
