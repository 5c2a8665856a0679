"""The ``baseline`` stage: a classical, non-learned hotspot detector scored by the same evaluation as the model.

The flux-divergence method of Beirle et al. (Sci. Adv. 5, eaax9800, 2019; ESSD 13, 2995, 2021; ESSD 15, 3051,
2023): per overpass, the NO2 flux (column x wind) and its divergence plus the chemical sink (column / lifetime);
averaged over the period, sources stand out as local maxima of the mean emission map, which is free of the
smooth background (the divergence of a uniform field is zero) and of transported plumes (their divergence is zero
away from the source). :mod:`.divergence` is the per-overpass unit, :mod:`.run` the stage.
"""
