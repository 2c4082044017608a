"""Shared fixtures: where the third-party test captures live, and the manifest of their counts.

The 87 shared captures are test data kept outside the repository (``../shared/traces`` beside the
checkout, or ``$PIPELINE_SHARED_TRACES``); they are never copied into the repo.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_traces_dir() -> Path:
    env = os.environ.get("PIPELINE_SHARED_TRACES")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "traces"


def load_manifest() -> list[dict]:
    path = shared_traces_dir() / "manifest.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())


MANIFEST: list[dict] = load_manifest()


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    d = shared_traces_dir()
    if not d.exists():
        pytest.fail(f"shared test captures not found at {d} (set PIPELINE_SHARED_TRACES)")
    return d


@pytest.fixture(scope="session")
def manifest() -> list[dict]:
    if not MANIFEST:
        pytest.fail("shared manifest.json not found")
    return MANIFEST


@pytest.fixture(scope="session")
def bundled_traces() -> Path:
    """The project's own captures under traces/."""
    return REPO_ROOT / "traces"
