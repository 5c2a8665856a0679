"""Data-quality suites (great-expectations 1.x, in process) for the simulated dataset and the gridded TROPOMI.

- :mod:`.suite`: run plain-data expectations over pandas tables, write JSON + Markdown reports, raise
  :class:`~no2hotspots.errors.ValidationFailed` naming each failed expectation.
- :mod:`.simulated`: per-scene / dataset summaries of the simulated shards and their suite.
- :mod:`.grid`: :func:`~no2hotspots.validate.grid.validate_grid` for the ingest stage's grids.
- :mod:`.run`: the ``validate`` stage.

great_expectations is imported only when a suite runs.
"""
