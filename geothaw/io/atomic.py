"""Atomic file writes: write to a temporary sibling, fsync, then rename over the final path.

A killed process therefore leaves either the old file or the complete new one, never half a raster.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError

try:
    import resource  # POSIX only
except ImportError:  # pragma: no cover - Windows
    resource = None


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success it replaces ``final`` atomically."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or final.suffix or ".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would, so colleagues and
        # GIS servers sharing the output folder can read the rasters.
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, final)
    except Exception as exc:
        # Libraries report a full disk in their own words (netCDF4: "HDF error"); say what happened.
        reason = disk_problem(exc, tmp_path)
        if reason:
            raise OutputError(f"cannot write {final}: {reason}") from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _current_umask() -> int:
    """The process umask (read without changing it where /proc allows; the swap fallback is instant)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_DISK_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EFBIG: "file size limit reached"}


def disk_problem(exc: BaseException, path: Path | None = None) -> str | None:
    """A one-phrase diagnosis when ``exc`` (raised while writing ``path``) came from a full disk or a file-size
    limit, else None. Looks through the exception chain, then at the file system itself."""
    e: BaseException | None = exc
    while e is not None:
        if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:
            return _DISK_ERRNOS[e.errno]
        e = e.__cause__ or e.__context__
    if path is None:
        return None
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        size = path.stat().st_size if path.exists() else 0
        if soft != resource.RLIM_INFINITY and size >= soft - 65536:
            return f"file size limit reached ({soft} bytes, see `ulimit -f`)"
    if shutil.disk_usage(path.parent).free < 1 << 20:
        return "no space left on the device"
    return None


def write_text_atomic(final: str | os.PathLike, text: str) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return Path(final)
