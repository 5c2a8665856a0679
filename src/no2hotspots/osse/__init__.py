"""Observing-system simulation (OSSE): synthetic TROPOMI-like S5P L2 NO2 granules with known truth.

The NO2 comes from real inventory sources rendered with a *different* transport model than the training
simulator: Gaussian puffs advected by a turning, time-varying wind (see :mod:`.transport`), seen through a
TROPOMI-like swath (:mod:`.geometry`), with background, clouds and noise (:mod:`.weather`, :mod:`.observe`), written
in the official L2 layout (:mod:`.granule`). ``run(cfg)`` in :mod:`.run` is the ``osse`` stage.
"""
