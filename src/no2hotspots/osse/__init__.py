"""Observing-system simulation (OSSE): synthetic TROPOMI-like S5P L2 NO2 granules with known truth.

The NO2 comes from real inventory sources rendered with puffs advected by a turning, time-varying wind (see
:mod:`.transport`; the training simulator uses it for a configurable share of its scenes, the rest are steady
Gaussian plumes: docs/simulate.md), seen through a
TROPOMI-like swath (:mod:`.geometry`), with background, clouds and noise (:mod:`.weather`, :mod:`.observe`), written
in the official L2 layout (:mod:`.granule`). ``run(cfg)`` in :mod:`.run` is the ``osse`` stage: one unit per day
(:mod:`.day`), truth files (:mod:`.truth`: fields, winds), config checks (:mod:`.checks`).
"""
