"""no2hotspots: industrial emission hotspots from satellite NO2 with a CNN trained on simulated plumes."""

__version__ = "0.1.0"
