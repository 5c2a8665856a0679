"""The CNN that maps a 64x64 NO2 field (+ validity mask) to a 64x64 relative-emission map.

``blocks`` holds the small building blocks (spatial attention, stem, residual block, heads), ``net`` the network,
its builder from ``conf/model/*.yaml`` and checkpoint checks, ``inputs`` the one input-preparation function that
training and detection share. Nothing here imports torchmetrics (see ``no2hotspots.metrics``).
"""
