"""The ``download`` command: fetch Sentinel-5P L2 NO2 granules from the Copernicus Data Space Ecosystem (CDSE)."""
