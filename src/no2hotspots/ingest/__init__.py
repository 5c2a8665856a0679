"""The ``ingest`` stage: read TROPOMI NO2 granules (any supported layout) and grid them onto a regular lat/lon grid.

``readers`` turns a file into the common pixel schema (one small handler per layout, auto-detected by content);
``gridding`` does the exact area-weighted regridding of pixel footprints; ``run`` is the DVC stage.
"""
