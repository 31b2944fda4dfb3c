"""Prepare the later stages while the early ones compute: imports in a thread, cold numba kernels in a child.

torch (≈ 2.3 s), the torch compiler package its optimisers pull in on first use (≈ 2.3 s) and xsdba (≈ 3.4 s)
take ≈ 8 s to import on one core. The world build runs in numba threads with the interpreter lock released and
leaves part of a core idle, so importing them there takes those seconds off the run's critical path (≈ 8 s of
the quick run). An import that fails here is simply retried, and reported, by the stage that needs it.

On a fresh clone numba must first compile the soil solver (≈ 40 s on one core, the other idle) and, at bias
correction, xsdba's quantile kernels (≈ 23 s). Numba compiles under one lock per process, so the two cannot
overlap in threads: when the solver has no cached machine code, a child process compiles xsdba's kernels into
numba's disk cache on the idle core, and the bias-correction stage later loads them from there.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading

TORCH_MODULES = ("torch", "torch._dynamo", "geothaw.training")
BIAS_CORRECTION_MODULES = ("xsdba", "geothaw.biascorrect")
LATER_STAGE_MODULES = TORCH_MODULES + BIAS_CORRECTION_MODULES


def solver_needs_compiling() -> bool:
    """True when numba's disk cache holds no machine code for the soil solver (e.g. a fresh clone).

    Reads numba's cache index (an internal API); if that fails for any reason, the answer is False and the run
    simply proceeds as it would have without this check.
    """
    try:
        from .physics import heat

        return not heat._kernel._cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - a heuristic: never let it stop a run
        return False


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the stage importing it for real raises the error where it matters
            pass


class BackgroundWarmup:
    """The import thread and, on a cold numba cache, the kernel-compiling child process."""

    def __init__(self, modules: tuple[str, ...], compile_in_child: bool):
        self.child: subprocess.Popen | None = None
        if compile_in_child:
            self.child = subprocess.Popen([sys.executable, "-m", "geothaw.warmup"], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.thread = threading.Thread(target=self._work, args=(modules,), name="geothaw-background-imports")
        self.thread.start()

    def _work(self, modules: tuple[str, ...]) -> None:
        first = tuple(m for m in modules if m not in BIAS_CORRECTION_MODULES) if self.child else modules
        _import_all(first)
        if self.child is not None:
            self.child.wait()  # xsdba imported after its kernels are cached: no second compile in this process
            _import_all(tuple(m for m in modules if m in BIAS_CORRECTION_MODULES))

    def join(self, cancel: bool = False) -> None:
        """Wait for the thread; with ``cancel`` (a run that failed or was interrupted) stop the child first."""
        if cancel and self.child is not None and self.child.poll() is None:
            self.child.terminate()
        self.thread.join()


def start_background_imports(modules: tuple[str, ...] = LATER_STAGE_MODULES,
                             compile_kernels: bool | None = None) -> BackgroundWarmup:
    """Start importing ``modules`` in a thread, and compiling xsdba's kernels in a child process when the
    solver's numba cache is cold (``compile_kernels=None``: decide by :func:`solver_needs_compiling`).
    Call ``join()`` before the process exits."""
    if compile_kernels is None:
        compile_kernels = solver_needs_compiling()
    return BackgroundWarmup(modules, compile_in_child=compile_kernels)


if __name__ == "__main__":  # the child: compile (or load) the bias-correction kernels into numba's disk cache
    from .biascorrect import warm_kernels

    warm_kernels()
