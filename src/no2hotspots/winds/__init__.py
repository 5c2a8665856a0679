"""Winds for emission estimates: read wind files, choose the plume-relevant level, sample u/v with an uncertainty.

One file layout per small module, all returning the same reduced field (:class:`.layouts.ReducedWind`), so nothing
downstream knows which layout a wind came in:

- :mod:`.layouts`  recognise a file by content (ERA5 pressure levels / single levels in the CDS layout, or the simple
                   ``u, v (time, latitude, longitude)`` layout the OSSE writes), normalise coordinates, check units;
- :mod:`.profile`  reduce a vertical profile to the configured level (one pressure level, 10 m / 100 m, a mean over a
                   height layer above ground, or the boundary-layer mean) and its vertical spread;
- :mod:`.field`    :class:`.field.WindField`: the files of a collection indexed by time; ``at(lat, lon, time)`` gives
                   u, v, speed, direction and their 1-sigma uncertainty; a documented fallback when there is no wind.
"""

from .field import FallbackWind, WindField, WindSample, open_winds  # noqa: F401
