"""Training-data simulator: Gaussian column plumes of point sources on 64x64 scenes, with background, noise,
striping and cloud gaps (see :mod:`.physics` for the plume model and :mod:`.sources` for the emission sampling).

Public API:
- :func:`no2hotspots.simulate.run.run` - the ``simulate`` stage.
- :func:`no2hotspots.simulate.scenes.sample_scenes` / :func:`~no2hotspots.simulate.scenes.simulate_batch` - pure,
  vectorised batch simulation from explicit parameters.

The files it writes are the contract :mod:`no2hotspots.contracts.shards` (``open_split``, ``shard_paths``).
"""
