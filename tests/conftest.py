"""Shared pytest setup. Package-specific fixtures live in tests/<package>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import simulator

# Tests are a composition root: they plug the simulated cluster in as an executor backend.
simulator.plug()

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "scenarios"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests talk only to 127.0.0.1; a proxy from the environment must never intercept that.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def scenarios_dir() -> Path:
    return SCENARIOS


def pytest_report_header(config: pytest.Config) -> str:
    return f"clusterdoc tests; CLUSTERDOC_ES_URL={'set' if os.environ.get('CLUSTERDOC_ES_URL') else 'unset'}"
