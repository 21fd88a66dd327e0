"""Fixtures shared by the tests."""
import pytest


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """Data folders that hold nothing: ``$SLAMP_DATA`` and the user cache point into ``tmp_path``,
    the clone's ``data/`` is out of the search, and no stand-in digits are chosen. Returns the
    data folder (``$SLAMP_DATA``)."""
    from slamp.data import files

    home = tmp_path / "data-folder"
    monkeypatch.setenv("SLAMP_DATA", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SLAMP_DIGITS", raising=False)
    monkeypatch.setattr(files, "CLONE_DATA", None)
    return home
