"""Shared fixtures: where the real face photos are, an isolated FACEMETRIC_HOME, tiny models, the
browser tests' chromium (tests/browser.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser import (  # the browser tests' fixtures (tests/browser.py), registered here
    _session_chromium,
    _session_playwright,
    chromium,
    launch_chromium,
    playwright,
)

__all__ = ["_session_chromium", "_session_playwright", "chromium", "launch_chromium", "playwright"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACEMETRIC_SHARED_DATA", REPO.parent / "shared" / "data"))

requires_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"real face photos not found at {SHARED_DATA} (set FACEMETRIC_SHARED_DATA)",
)


def shared_set(name: str) -> Path:
    """A data set under ../shared/data; skips the calling test when it is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not found: real face photos are needed for this test")
    return path


@pytest.fixture(scope="session")
def pretrained_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of converted pretrained models (and their ONNX exports) for the whole session:
    converting dlib's file and exporting it takes seconds, every test's home links to it."""
    return tmp_path_factory.mktemp("pretrained")


@pytest.fixture(autouse=True)
def facemetric_home(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    pretrained_cache: Path,
):
    """Every test gets its own state folder, so nothing touches the user's ~/.facemetric; only
    the converted pretrained models are shared (read-only in use)."""
    home = tmp_path_factory.mktemp("facemetric_home")
    (home / "pretrained").symlink_to(pretrained_cache, target_is_directory=True)
    monkeypatch.setenv("FACEMETRIC_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def untrained_tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the tiny backbone with random weights (for plumbing, not accuracy)."""
    import torch

    from facemetric.models import ModelSpec, build_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    model = build_model(ModelSpec(backbone="tiny", embedding_dim=32, input_size=112)).eval()
    save_checkpoint(path, model, meta={"note": "untrained, for tests"})
    return path


# ---- gallery backends: store behaviour tests run on SQLite and on a real PostgreSQL -------------
@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (skips when it cannot be started here)."""
    import pgserver

    why = pgserver.available()
    if why:
        pytest.skip(why)
    server = pgserver.PostgresServer()
    try:
        yield server
    finally:
        server.close()


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def gallery_at(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty gallery goes: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "gallery.db")
    return request.getfixturevalue("postgres_server").new_database()
