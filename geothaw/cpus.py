"""How many CPU cores this process may use (its affinity mask, not the machine's count: containers and batch
schedulers pin jobs to fewer cores than the machine has)."""

from __future__ import annotations

import os


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
