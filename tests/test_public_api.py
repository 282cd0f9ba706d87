"""Each package's ``__all__`` lists exactly its public names (the httpx habit)."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = [
    "sessionkeeper.store",
    "sessionkeeper.server",
    "sessionkeeper.service",
    "sessionkeeper.guard",
    "sessionkeeper.client",
    "sessionkeeper.bridge",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_") and not inspect.ismodule(value) and attr != "annotations"
    }
    assert set(module.__all__) == public
