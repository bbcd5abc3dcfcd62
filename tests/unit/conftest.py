"""Fixtures for the unit tests (the harness itself is in nodeharness.py)."""
import pytest

from nodeharness import Harness


@pytest.fixture
def h() -> Harness:
    return Harness()
