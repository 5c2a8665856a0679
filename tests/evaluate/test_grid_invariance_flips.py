"""``benchmarks/grid_invariance.py --flips``: why two grids' period products match different sources, on hand-made
tables whose every flip has a known cause."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]

# A and A2: two units of one plant 1.7 km apart (beyond evaluate.facility_km, 1 km); B a neighbour 5.1 km east of A;
# C alone; D found on both grids; D2 a unit of D's plant 0.3 km away, which the 0.0625 deg grid's site lies on: one
# facility with D, so no flip
SOURCES = pd.DataFrame(
    {
        "id": ["A", "A2", "B", "C", "D", "D2"],
        "lat": [40.0, 40.0, 40.0, 40.5, 41.0, 41.0],
        "lon": [115.0, 115.02, 115.06, 116.0, 117.0, 117.0036],
        "nox_t_per_yr": [5000.0, 800.0, 1500.0, 300.0, 9000.0, 100.0],
    }
)
SITES = {  # each grid's period sites, exactly on the source each should be matched to (nearest rule)
    "ref": [(40.0, 115.02), (40.5, 116.0), (41.0, 117.0)],  # A2, C, D
    "res0625": [(40.0, 115.0), (40.0, 115.06), (41.0, 117.0036)],  # A, B, D (on its unit D2)
}


def _root(tmp_path: Path) -> Path:
    (tmp_path / "osse" / "truth").mkdir(parents=True)
    SOURCES.to_csv(tmp_path / "osse" / "truth" / "sources.csv", index=False)
    for name, sites in SITES.items():
        for product in ("hybrid", "baseline"):
            d = tmp_path / f"default_{name}" / product / "osse"
            d.mkdir(parents=True)
            pd.DataFrame(sites, columns=["peak_lat", "peak_lon"]).to_csv(d / "composite.csv", index=False)
    return tmp_path


def test_each_flip_is_classified_by_what_took_its_match(tmp_path, benchmark_script, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # grid_invariance imports its sibling composite_rule
    mod = benchmark_script("grid_invariance")
    out = mod.flips(_root(tmp_path), match_km=10.0)["hybrid"]
    assert out["jaccard"] == pytest.approx(1 / 5)  # {A2, C, D} against {A, B, D}
    kinds = {r["source"]: (r["only_on"], r["kind"]) for r in out["rows"]}
    assert kinds == {
        "A2": ("ref", "other_source_le_3km"),  # the other grid matched A, 1.7 km away
        "C": ("ref", "none"),  # nothing matched near it on the other grid
        "A": ("res0625", "other_source_le_3km"),
        "B": ("res0625", "neighbour_le_match_km"),  # A2, 3.4 km away, is the nearest the other grid matched
    }
    assert out["by_kind"] == {"other_source_le_3km": 2, "neighbour_le_match_km": 1, "none": 1}
    assert out["flipped_under_2000_t"] == 3  # A2, C, B
    # within 10 km of a site every source but C is found on both grids
    assert out["near_rule"]["n_flipped"] == 1
    assert out["near_rule"]["flipped_nox_t_per_yr"] == [300.0]
