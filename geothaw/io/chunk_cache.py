"""A small netCDF-C chunk cache for files opened in bulk (reanalysis years, projection members)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# netCDF-C keeps a chunk cache per variable of every open file (64 MiB by default), and a record is 75 yearly
# files held open at once: after one read pass the caches held each file's whole data (~80 MB per 0.1° year,
# 6.2 GB for the full record). dask reads whole chunks, so a small cache costs no re-reads.
NETCDF_CHUNK_CACHE_BYTES = 2**20


@contextlib.contextmanager
def netcdf_chunk_cache(nbytes: int) -> Iterator[None]:
    """Files opened inside get ``nbytes`` of chunk cache per variable; the process default is restored after."""
    import netCDF4

    size, nelems, preemption = netCDF4.get_chunk_cache()
    netCDF4.set_chunk_cache(nbytes, nelems, preemption)
    try:
        yield
    finally:
        netCDF4.set_chunk_cache(size, nelems, preemption)
