"""file_utils.atomic_write: whole files only, the usual permissions, nothing left behind on failure."""

import os
import stat

import pytest

from whisper_at_hf.file_utils import atomic_write


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores it (tests run in one thread)."""
    previous = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_mode_follows_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write(tmp_path / "out.json", "{}")
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == mode
    # replacing a file keeps the rule (the temporary file's mode is what survives the rename)
    atomic_write(tmp_path / "out.json", b"[]")
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == mode
    assert (tmp_path / "out.json").read_bytes() == b"[]"


def test_creates_the_folder_and_leaves_no_temporary_file(tmp_path):
    atomic_write(tmp_path / "a" / "b" / "out.txt", "héllo")
    assert (tmp_path / "a" / "b" / "out.txt").read_text(encoding="utf-8") == "héllo"
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def full_disk(descriptor):  # the data cannot reach the disk (as on a full disk)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o755), (0o077, 0o700), (0o002, 0o775)])
def test_staging_dir_mode_follows_the_umask(tmp_path, umask, mask, mode):
    from whisper_at_hf.file_utils import staging_dir

    umask(mask)
    first, second = staging_dir(tmp_path), staging_dir(tmp_path)
    assert first != second and first.parent == tmp_path and first.name.startswith(".tmp-")
    assert stat.S_IMODE(first.stat().st_mode) == mode and not any(first.iterdir())
