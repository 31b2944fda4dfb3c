"""Atomic writes: the final path holds the old file or the whole new one, readable as a plain write would be."""

from __future__ import annotations

import os
import stat

import pytest

from geothaw.io.atomic import atomic_path, write_text_atomic


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask_like_a_plain_open(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_text_atomic(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_writer_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    final = tmp_path / "magt.tif"
    final.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["magt.tif"]
