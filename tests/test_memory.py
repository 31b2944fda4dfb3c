"""A stage's peak memory and handing freed heap back to the system (glibc, Linux)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc and /proc only")

# in a fresh interpreter, so nothing else in the test process holds or frees heap meanwhile
_SCRIPT = """
import resource, time
import numpy as np
from geothaw.memory import PeakRss, return_freed_memory, rss_bytes
M = 2**20
with PeakRss() as first:
    arrays = [np.ones(8000) for _ in range(4000)]  # 64 kB each: from the heap, under glibc's mmap threshold
    pinned = np.ones(8000)  # above them, so free() alone cannot shrink the heap from its top
before = rss_bytes()
del arrays
freed = rss_bytes()
assert return_freed_memory() is True
trimmed = rss_bytes()
with PeakRss(interval=0.05) as second:  # below the first stretch's high-water mark: found by sampling
    held = np.ones(100 * M // 8)
    time.sleep(0.5)
    del held
print(before // M, freed // M, trimmed // M, first.peak_bytes // M, second.peak_bytes // M,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_freed_heap_goes_back_to_the_system_and_each_stretch_has_its_own_peak():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    before, freed, trimmed, first, second, maxrss = map(int, out.stdout.split())
    # 4000 × 64 kB = 250 MiB were freed; glibc keeps them mapped until malloc_trim returns them
    assert freed > before - 50
    assert trimmed < freed - 200
    assert first >= before  # the first stretch raised the high-water mark: its peak is exact
    assert trimmed + 90 <= second < first - 100  # the second held 100 MiB on top of the trimmed level
    assert maxrss >= first  # the process's own peak (what /usr/bin/time reports) is left alone
