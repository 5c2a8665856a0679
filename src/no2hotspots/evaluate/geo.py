"""Great-circle distances and radius searches on the sphere (km)."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    lat1, lon1, lat2, lon2 = (np.deg2rad(np.asarray(v, dtype=float)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def unit_vectors(lat, lon) -> np.ndarray:
    lat = np.deg2rad(np.asarray(lat, dtype=float))
    lon = np.deg2rad(np.asarray(lon, dtype=float))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1).reshape(-1, 3)


def chord(distance_km: float) -> float:
    """Straight-line distance on the unit sphere for a great-circle distance (for KD-tree radius queries)."""
    return 2.0 * np.sin(min(distance_km / EARTH_RADIUS_KM, np.pi) / 2.0)


def single_linkage(lat, lon, km: float) -> np.ndarray:
    """Group number of each point (0..n-1, in order of first appearance): points within ``km`` of each other
    (great circle) share one, and chains of them too. The graph is built over the distinct coordinates (identical
    points are always linked), which keeps it small for a year of peaks on grid-cell centres."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    coords = np.stack([np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)], axis=1).reshape(-1, 2)
    if len(coords) == 0:
        return np.zeros(0, dtype=int)
    uniq, inverse = np.unique(coords, axis=0, return_inverse=True)
    m = len(uniq)
    pairs = np.zeros((0, 2), dtype=int)
    if km > 0:
        tree = cKDTree(unit_vectors(uniq[:, 0], uniq[:, 1]))
        pairs = tree.query_pairs(r=chord(km) * (1 + 1e-9), output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(m, m))
    _, labels = connected_components(graph, directed=False)
    labels = labels[np.asarray(inverse).ravel()]
    _, first = np.unique(labels, return_index=True)  # renumber by first appearance: stable and readable
    return np.argsort(np.argsort(first))[labels]


def distance_to_box_km(lat, lon, lat0, lat1, lon0, lon1) -> np.ndarray:
    """Distance from points to lat/lon rectangles (0 inside); the nearest point is the clamped coordinate."""
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    return haversine_km(lat, lon, np.clip(lat, lat0, lat1), np.clip(lon, lon0, lon1))


class PointIndex:
    """KD-tree over points on the sphere answering 'which points lie within d km' and 'nearest point'."""

    def __init__(self, lat, lon):
        from scipy.spatial import cKDTree

        self.lat = np.asarray(lat, dtype=float)
        self.lon = np.asarray(lon, dtype=float)
        self._tree = cKDTree(unit_vectors(self.lat, self.lon)) if len(self.lat) else None

    def __len__(self) -> int:
        return len(self.lat)

    def within(self, lat, lon, distance_km: float) -> list[np.ndarray]:
        """For each query point, the indices of indexed points within ``distance_km`` (great circle)."""
        lat = np.atleast_1d(np.asarray(lat, dtype=float))
        lon = np.atleast_1d(np.asarray(lon, dtype=float))
        if self._tree is None:
            return [np.zeros(0, dtype=int) for _ in lat]
        cands = self._tree.query_ball_point(unit_vectors(lat, lon), r=chord(distance_km) * (1 + 1e-9))
        out = []
        for q, idx in enumerate(cands):
            idx = np.asarray(sorted(idx), dtype=int)
            if len(idx):
                idx = idx[haversine_km(lat[q], lon[q], self.lat[idx], self.lon[idx]) <= distance_km]
            out.append(idx)
        return out

    def nearest(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        """(index, distance_km) of the nearest indexed point for each query point (-1, NaN when empty)."""
        lat = np.atleast_1d(np.asarray(lat, dtype=float))
        lon = np.atleast_1d(np.asarray(lon, dtype=float))
        if self._tree is None or len(lat) == 0:
            return np.full(len(lat), -1, dtype=int), np.full(len(lat), np.nan)
        _, idx = self._tree.query(unit_vectors(lat, lon), k=1)
        idx = np.asarray(idx, dtype=int)
        return idx, haversine_km(lat, lon, self.lat[idx], self.lon[idx])

    def any_within(self, lat, lon, distance_km: float) -> np.ndarray:
        """For each query point: does some indexed point lie within ``distance_km`` (great circle; False when
        nothing is indexed). The nearest point decides: the chord order is the great-circle order."""
        _, d = self.nearest(lat, lon)
        return np.nan_to_num(d, nan=np.inf) <= float(distance_km)

    def nearest_other(self, lat, lon) -> np.ndarray:
        """Distance (km) from each query point to the nearest indexed point other than the closest one (the query
        point itself when it is indexed): the nearest-neighbour distance of indexed points. NaN with < 2 points."""
        lat = np.atleast_1d(np.asarray(lat, dtype=float))
        lon = np.atleast_1d(np.asarray(lon, dtype=float))
        if self._tree is None or len(self.lat) < 2 or len(lat) == 0:
            return np.full(len(lat), np.nan)
        _, idx = self._tree.query(unit_vectors(lat, lon), k=2)
        j = np.asarray(idx, dtype=int)[:, 1]
        return haversine_km(lat, lon, self.lat[j], self.lon[j])
