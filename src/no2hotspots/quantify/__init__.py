"""Emission rates with uncertainty: NOx (t/yr, as NO2) and CO2 (Mt/yr) for hotspots and sites (docs/quantify.md).

- :mod:`.inputs`      the one adapter to the ingest grid and hotspot table layouts (and inventories);
- :mod:`.scene`       a hotspot's neighbourhood on local km coordinates; background plane; noise from the data;
- :mod:`.csf`, :mod:`.ime`, :mod:`.divergence`   the estimators (mol/s NO2, each with its uncertainty budget);
- :mod:`.ddeq_ref`    ddeq 1.1's own chain as a reference, where ddeq is installed;
- :mod:`.plume`       the plume's direction when the wind has none;
- :mod:`.chemistry`   NOx/NO2 ratio, lifetime, units; :mod:`.co2` CO2 via the plant's CO2/NOx ratio;
- :mod:`.period`      sites and the combination of overpass estimates; :mod:`.evaluation` against the truth;
- :mod:`.run`         ``run(cfg)``: the ``quantify`` stage.
"""
