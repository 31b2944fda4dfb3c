"""The main job's errors a user meets, each in one line with nothing partial left: missing inputs, a
read-only output directory, a full disk. Apart from tests/test_pipeline.py so a second worker runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_pipeline import TINY, _cmd  # the same tiny run command as the end-to-end tests


def test_missing_input_files_fail_in_one_line(tmp_path):
    cfg = tmp_path / "real.yaml"
    cfg.write_text("data:\n  source: files\n  era5land: [nowhere/era5_*.nc]\n")
    proc = subprocess.run([sys.executable, "-m", "geothaw", "run", "--config", str(cfg)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert lines == ["error: invalid config value for 'data': file not found: nowhere/era5_*.nc"], lines
    assert not (tmp_path / "runs").exists()


def test_read_only_output_directory_fails_cleanly(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root); permissions cannot be tested")
        proc = subprocess.run([sys.executable, "-m", "geothaw", "run", "--config", str(TINY), "--set",
                               f"output.runs_dir={ro}"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and "not writable" in proc.stdout + proc.stderr
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs POSIX resource limits")
def test_full_disk_fails_in_one_line_and_leaves_nothing_partial(tmp_path):
    import resource

    def small_disk() -> None:  # a 300 kB file-size limit: writes beyond it fail as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    proc = subprocess.run(_cmd(tmp_path / "runs", tmp_path / "worlds"), capture_output=True, text=True, timeout=600,
                          preexec_fn=small_disk)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-2000:]
    assert "Traceback" not in out
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "file size limit reached" in errors[0], out[-2000:]
    failed = Path(errors[0].split("cannot write ")[1].split(": file size")[0])
    assert not failed.exists()  # the final path never holds a truncated file
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # and no temporary sibling is left behind


def test_progress_in_a_log_file_prints_plain_lines():
    """A run logged to a file (batch job, nohup) shows its progress as lines, not only when a stage ends."""
    import io

    from rich.console import Console

    from geothaw.stages import LoggedProgress, progress_bar

    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)
    assert isinstance(progress_bar(console), LoggedProgress)
    clock = iter(range(0, 10_000, 10))  # 10 s per reading, so rich has a speed to give an ETA from
    with LoggedProgress(every=0, console=console, get_time=lambda: float(next(clock))) as bar:
        task = bar.add_task("physics blocks", total=4)
        for _ in range(4):
            bar.advance(task)
        bar.update(task, description="physics blocks")  # finished: no second final line
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("  physics blocks:")]
    assert [ln.split(":")[1].split()[0] for ln in lines] == ["1/4", "2/4", "3/4", "4/4"], lines
    assert "eta" in lines[1] and "(100 %)" in lines[-1] and "eta" not in lines[-1]
    assert not isinstance(progress_bar(Console(file=io.StringIO(), force_terminal=True)), LoggedProgress)
