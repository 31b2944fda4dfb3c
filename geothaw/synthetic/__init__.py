"""The physics-grounded synthetic Alaska: ERA5-Land-format record, CMIP5-format GCMs and scenario truth.

``build_world(cfg, out_dir)`` writes everything (see :class:`WorldPaths` for the layout) and is a no-op
when the world for that config is already complete.
"""

from __future__ import annotations

from .world import BLOCK_CELLS, RECORD_VARS, SCENARIO_VARS, WorldPaths, build_world, world_domain, world_hash, world_paths

__all__ = ["BLOCK_CELLS", "RECORD_VARS", "SCENARIO_VARS", "WorldPaths", "build_world", "world_domain", "world_hash",
           "world_paths"]
