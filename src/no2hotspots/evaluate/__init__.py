"""Evaluate hotspot tables against emission inventories: the paper's Fig. 8, Table 2, Fig. 9b and Fig. 10, and what
the paper leaves out (strict Table 2, chance floor, precision, localisation, recall by emission / observations /
neighbour distance / cloud-edge distance, detection frequency, time series with a change test).

The stage is :func:`no2hotspots.evaluate.run.run`; one pass over the overpass files (:mod:`.stream`, units on
Dask) feeds every table, and every hotspot table (model, composite, baseline) is scored by the same
:func:`.tables.evaluate_table`. docs/evaluate.md says what each figure and metric means.
"""
