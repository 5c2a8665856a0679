"""Detection: run the registered CNN over gridded TROPOMI NO2 and extract hotspots.

One TROPOMI grid (``outputs/ingest/<collection>.nc``) flows through:

- :mod:`.grid`      open the ingest grid, decide which cells are valid, check its resolution against the model;
- :mod:`.tiles`     cut each time step into overlapping 64x64 tiles, run the model in batches, blend the tiles
                    back into one seamless relative-emission map;
- :mod:`.resample`  opt-in (``detect.resample: model_pixel``): the model on a lattice of its training pixel, the
                    map interpolated back to the grid;
- :mod:`.hotspots`  connected regions above the threshold -> one hotspot per region (peak, sum, area, NOx estimate);
- :mod:`.outputs`   emission.nc, hotspots.csv/.geojson, map.png, detect.json in ``outputs/detect/<collection>/``;
- :mod:`.run`       ``run(cfg)``: the ``detect`` stage.
"""
