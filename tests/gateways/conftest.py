"""Gateway tests, faked at the HTTP boundary from each gateway's documentation. Every test here
starts and ends with a fresh gateway registry."""

from __future__ import annotations

import pytest

from gateways import registry


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.reset()
    yield
    registry.reset()
