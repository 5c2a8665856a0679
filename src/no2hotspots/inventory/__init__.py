"""Emission inventories: readers (one per layout) returning point sources or gridded emissions.

``load_points(inv_cfg)`` and ``load_gridded(inv_cfg)`` dispatch on ``inv_cfg.kind`` (see :mod:`.load`).
"""

from .load import load_gridded, load_points, points_in_bbox  # noqa: F401
