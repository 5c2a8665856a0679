"""Emission inventories: readers (one per layout) returning point sources or gridded emissions."""
