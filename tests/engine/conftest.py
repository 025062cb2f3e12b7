"""Fixtures of the engine tests that work below the engine, on llama.cpp's own objects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from toolrun import DEFAULT_MODEL, AsyncAI
from toolrun.engines.llamacpp._model import LlamaModel


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaModel]:
    """The default model's weights, loaded batch-invariant as the engine loads them, without a context."""
    loaded = LlamaModel(AsyncAI().weights(DEFAULT_MODEL), batch_invariant=True)
    yield loaded
    loaded.close()
