"""TROPOMI-like swath geometry on a local plane.

Each granule lives on its own local plane: a sinusoidal (equal-area) projection centred on the orbit's nadir at
the region's central latitude. In that plane the ground track is a straight line at ``track_azimuth_deg`` (about
-14 deg, NNW, for Sentinel-5P's ascending node at mid-latitudes); ``a`` is the distance along track and ``c`` across
track (positive to the right of the flight direction, roughly east). Across-track pixel edges come from equal steps
in viewing angle seen from 824 km altitude over a spherical Earth, which gives ~3.5 km at nadir growing to
~15 km at the swath edge (+-54 deg, swath ~2600 km) as for TROPOMI; along track the pixels are 5.5 km.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EARTH_R_KM = 6371.0
#: Sentinel-5P: 227 orbits in a 16-day repeat cycle
ORBITS_PER_DAY = 227 / 16
ORBIT_PERIOD_S = 86400.0 / ORBITS_PER_DAY
#: a real orbit used to number synthetic ones plausibly (S5P orbit 19594 started 2021-07-25T11:07:15 UTC)
ORBIT_REF = (19594, np.datetime64("2021-07-25T11:07:15", "s"))


class LocalPlane:
    """Sinusoidal projection about (lat0, lon0), in km: x = R dlon cos(lat), y = R dlat. Exactly invertible."""

    def __init__(self, lat0: float, lon0: float):
        self.lat0 = float(lat0)
        self.lon0 = float(lon0)

    def to_xy(self, lat, lon):
        lat = np.asarray(lat, float)
        dlon = (np.asarray(lon, float) - self.lon0 + 180.0) % 360.0 - 180.0
        x = EARTH_R_KM * np.radians(dlon) * np.cos(np.radians(lat))
        y = EARTH_R_KM * np.radians(lat - self.lat0)
        return x, y

    def to_latlon(self, x, y):
        lat = self.lat0 + np.degrees(np.asarray(y, float) / EARTH_R_KM)
        lon = self.lon0 + np.degrees(np.asarray(x, float) / (EARTH_R_KM * np.cos(np.radians(lat))))
        lon = (lon + 180.0) % 360.0 - 180.0
        return lat, lon


def across_track_edges_km(n_ground_pixels: int, max_view_angle_deg: float, altitude_km: float) -> np.ndarray:
    """Ground distance [km] from nadir of the ``n+1`` across-track pixel edges (equal viewing-angle steps)."""
    theta = np.radians(np.linspace(-max_view_angle_deg, max_view_angle_deg, int(n_ground_pixels) + 1))
    k = (EARTH_R_KM + altitude_km) / EARTH_R_KM
    s = np.clip(k * np.sin(np.abs(theta)), -1, 1)
    gamma = np.arcsin(s) - np.abs(theta)  # Earth-central angle between nadir and the viewed point
    return np.sign(theta) * EARTH_R_KM * gamma


@dataclass
class GranuleGrid:
    """Pixels of one (cropped) granule: scanlines along track x ground pixels across track."""

    plane: LocalPlane
    azimuth_deg: float
    a_centres: np.ndarray  # (n_scan,) km along track
    along_km: float
    c_edges: np.ndarray  # (n_gp+1,) km across track
    ground_pixel_offset: int  # index of the first kept ground pixel in the full swath

    @property
    def shape(self) -> tuple[int, int]:
        return self.a_centres.size, self.c_edges.size - 1

    @property
    def _axes(self):
        az = np.radians(self.azimuth_deg)
        d_a = np.array([np.sin(az), np.cos(az)])  # flight direction (x east, y north)
        d_c = np.array([np.cos(az), -np.sin(az)])  # to the right of the flight direction
        return d_a, d_c

    def ac_to_xy(self, a, c):
        d_a, d_c = self._axes
        a = np.asarray(a, float)
        c = np.asarray(c, float)
        return a * d_a[0] + c * d_c[0], a * d_a[1] + c * d_c[1]

    def latlon_to_ac(self, lat, lon):
        x, y = self.plane.to_xy(lat, lon)
        d_a, d_c = self._axes
        return x * d_a[0] + y * d_a[1], x * d_c[0] + y * d_c[1]

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre latitude, longitude, shape (n_scan, n_gp)."""
        cc = 0.5 * (self.c_edges[1:] + self.c_edges[:-1])
        a, c = np.meshgrid(self.a_centres, cc, indexing="ij")
        return self.plane.to_latlon(*self.ac_to_xy(a, c))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Corner latitude, longitude, shape (n_scan, n_gp, 4), corners going round the pixel."""
        h = self.along_km / 2
        a0 = self.a_centres[:, None] - h
        a1 = self.a_centres[:, None] + h
        c0 = self.c_edges[None, :-1]
        c1 = self.c_edges[None, 1:]
        corners_a = np.stack(np.broadcast_arrays(a0, a0, a1, a1), axis=-1)
        corners_c = np.stack(np.broadcast_arrays(c0, c1, c1, c0), axis=-1)
        return self.plane.to_latlon(*self.ac_to_xy(corners_a, corners_c))

    def area_m2(self) -> np.ndarray:
        widths = np.diff(self.c_edges)
        return np.broadcast_to(self.along_km * widths[None, :] * 1e6, self.shape)


def region_outline(bbox, margin_deg: float, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Points along the edge of bbox = [lon_min, lat_min, lon_max, lat_max] grown by ``margin_deg``."""
    lon0, lat0, lon1, lat1 = (float(b) for b in bbox)
    lon0, lat0, lon1, lat1 = lon0 - margin_deg, lat0 - margin_deg, lon1 + margin_deg, lat1 + margin_deg
    t = np.linspace(0, 1, n)
    lons = np.concatenate([lon0 + (lon1 - lon0) * t, np.full(n, lon1), lon1 - (lon1 - lon0) * t, np.full(n, lon0)])
    lats = np.concatenate([np.full(n, lat0), lat0 + (lat1 - lat0) * t, np.full(n, lat1), lat1 - (lat1 - lat0) * t])
    return lats, lons


def granule_grid(
    lat0: float,
    lon_nadir: float,
    *,
    azimuth_deg: float,
    full_edges: np.ndarray,
    along_km: float,
    outline: tuple[np.ndarray, np.ndarray],
    pad_km: float,
    min_overlap: float,
) -> GranuleGrid | None:
    """The granule of the orbit whose nadir crosses ``lat0`` at ``lon_nadir``, cropped to the region outline.

    Returns None when the swath covers less than ``min_overlap`` of the region's across-track extent.
    """
    plane = LocalPlane(lat0, lon_nadir)
    grid = GranuleGrid(plane, azimuth_deg, np.zeros(1), along_km, full_edges, 0)
    a, c = grid.latlon_to_ac(*outline)
    cmin, cmax = float(c.min()) - pad_km, float(c.max()) + pad_km
    lo, hi = max(cmin, full_edges[0]), min(cmax, full_edges[-1])
    if hi <= lo or (hi - lo) < min_overlap * (cmax - cmin):
        return None
    j0 = int(np.searchsorted(full_edges, lo, side="right") - 1)
    j1 = int(np.searchsorted(full_edges, hi, side="left"))
    j0, j1 = max(j0, 0), min(j1, full_edges.size - 1)
    amin, amax = float(a.min()) - pad_km, float(a.max()) + pad_km
    n_scan = int(np.ceil((amax - amin) / along_km))
    a_centres = amin + along_km * (np.arange(n_scan) + 0.5)
    return GranuleGrid(plane, azimuth_deg, a_centres, along_km, full_edges[j0 : j1 + 1].copy(), j0)


def candidate_nadir_lons(lon_ref: float, region_lon: tuple[float, float], reach_deg: float) -> np.ndarray:
    """Nadir longitudes lon_ref + k * spacing (orbits of one day) within ``reach_deg`` of the region."""
    spacing = 360.0 / ORBITS_PER_DAY
    lo, hi = region_lon[0] - reach_deg, region_lon[1] + reach_deg
    k0 = int(np.floor((lo - lon_ref) / spacing))
    k1 = int(np.ceil((hi - lon_ref) / spacing))
    lons = lon_ref + spacing * np.arange(k0, k1 + 1)
    return lons[(lons >= lo) & (lons <= hi)]


def orbit_number(t: np.datetime64) -> int:
    n0, t0 = ORBIT_REF
    return int(n0 + np.floor((t - t0) / np.timedelta64(1, "s") / ORBIT_PERIOD_S))
