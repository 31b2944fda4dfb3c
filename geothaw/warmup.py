"""Import the later stages' heavy libraries in a background thread while the early stages compute.

torch (≈ 2.3 s), the torch compiler package its optimisers pull in on first use (≈ 2.3 s) and xsdba (≈ 3.4 s)
take ≈ 8 s to import on one core. The world build runs in numba threads with the interpreter lock released and
leaves part of a core idle, so importing them there takes those seconds off the run's critical path (≈ 8 s of
the quick run). An import that fails here is simply retried, and reported, by the stage that needs it.
"""

from __future__ import annotations

import importlib
import threading

LATER_STAGE_MODULES = ("torch", "torch._dynamo", "geothaw.training", "xsdba", "geothaw.biascorrect")


def start_background_imports(modules: tuple[str, ...] = LATER_STAGE_MODULES) -> threading.Thread:
    """Start importing ``modules`` in a thread; join it before the process exits (it is not a daemon)."""

    def work() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the stage importing it for real raises the error where it matters
                pass

    thread = threading.Thread(target=work, name="geothaw-background-imports")
    thread.start()
    return thread
