"""Fixtures shared by the theory tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def sample_text(tmp_path):
    path = tmp_path / "sample.txt"
    path.write_text(" ".join(f"<{i % 90 + 3}>" for i in range(300)))  # words the tiny tokenizer knows
    return path
