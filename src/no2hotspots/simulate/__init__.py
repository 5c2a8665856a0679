"""Training-data simulator: NO2 column scenes of 64x64 pixels with their relative-emission targets.

The paper's world (``simulate=paper``): steady Gaussian column plumes of a few scattered point sources
(:mod:`.physics`, rates from the CoCO2 catalogue, :mod:`.sources`) with background, noise, striping and cloud gaps
(:mod:`.fields`). The demo's world adds what real scenes hold (docs/simulate.md): real CoCO2 cluster windows
(:mod:`.clusters`), sources down to 1 px apart and ~1 kt/yr, unmarked area sources (:mod:`.distractors`), the OSSE's
puffs in a turning wind as a second transport model (:mod:`.puffs`, through :mod:`no2hotspots.osse.transport`),
TROPOMI's across-track pixel sizes (:mod:`.swath`), cloud edges through sources, and a ``pairs`` test split.

Public API:
- :func:`no2hotspots.simulate.run.run` - the ``simulate`` stage.
- :func:`no2hotspots.simulate.scenes.load_world`, :func:`~no2hotspots.simulate.scenes.sample_scenes`,
  :func:`~no2hotspots.simulate.scenes.sample_pairs` / :func:`~no2hotspots.simulate.scenes.simulate_batch` - pure,
  vectorised batch simulation from explicit parameters.

The files it writes are the contract :mod:`no2hotspots.contracts.shards` (``open_split``, ``shard_paths``).
"""
