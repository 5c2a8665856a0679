"""The files between stages, as code: one module per contract, each with its ``write_*`` and ``open_*``/``read_*``.

- :mod:`.shards`      simulated scenes: ``<root>/{train,val,test}/shard-NNNNN.nc`` + ``<root>/manifest.json``
                      (simulate -> validate, train, score);
- :mod:`.grid`        gridded TROPOMI, one file per overpass + the period summary (ingest -> detect, evaluate);
- :mod:`.detections`  relative-emission maps and hotspot tables (detect -> evaluate, quantify).

Producers, consumers and test fixtures all go through these modules, so a format change happens in one place.
docs/contracts.md describes them in prose.
"""
