"""The spooled estimate rows (quantify.spool): read back one overpass file at a time, they give the tables all rows at
once give, byte for byte, however the overpasses' frames differ in their columns' types."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from no2hotspots.quantify.spool import SpooledRows, type_rows, write_rows


def _frame(k: int, rng: np.random.Generator) -> pd.DataFrame:
    """An overpass's rows as the estimators make them: a column's type depends on what the overpass saw."""
    n = int(rng.integers(1, 6))
    d = {
        "hotspot_id": np.arange(n) + 10 * k,
        # None where a hotspot has no period site: object in some frames, int64 in others
        "period_site_id": [None if (k + i) % 4 == 0 else i + 1 for i in range(n)],
        "time": [f"2019-01-{1 + k % 28:02d}T05:30:00"] * n,
        "method": ["csf", "ime", "divergence", "ddeq_csf", "csf"][:n],
        "nox_t_per_yr": np.where(rng.random(n) < 0.3, np.nan, rng.lognormal(8, 1, n)),
        # all missing in some overpasses (float NaN there), strings elsewhere
        "quality_flags": [None] * n if k % 3 else [f"flag{i}" if i % 2 else None for i in range(n)],
        "detected": [bool((k + i) % 2) for i in range(n)],
        # integers in some overpasses, floats in others, an object mix in a few
        "n_transects": np.arange(n) if k % 2 else np.arange(n) + 0.5,
        "mixed": [1, 2.5, None, 3, 4][:n] if k % 5 == 0 else list(range(n)),
    }
    if k % 7 == 3:
        d["wind_source"] = ["era5"] * n  # a column some overpasses do not write
    if k % 11 == 5:
        d["only_here"] = [True] * n  # booleans, missing elsewhere
    return pd.DataFrame(d)


def _all_at_once(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True, sort=False).infer_objects()


@pytest.mark.parametrize("n_frames", [1, 9, 300])  # 300: the type rows are themselves reduced (every 256 files)
def test_tables_from_the_spool_are_those_of_all_rows_at_once(tmp_path, n_frames):
    rng = np.random.default_rng(n_frames)
    frames = [_frame(k, rng) for k in range(n_frames)]
    files = []
    for k, f in enumerate(frames):
        files.append(tmp_path / f"{k}.pkl")
        write_rows(files[-1], f)
    rows = SpooledRows(files)
    whole = _all_at_once(frames)
    cols = ["hotspot_id", "nox_t_per_yr", "quality_flags", "wind_source", "not_a_column"]
    narrow = rows.narrow(cols)
    pd.testing.assert_frame_equal(narrow, _all_at_once([f[[c for c in cols if c in f]] for f in frames]))
    pd.testing.assert_frame_equal(narrow, whole[[c for c in cols if c in whole]])
    assert list(rows.dtypes.index) == list(whole.columns)
    assert rows.write_csv(tmp_path / "t.csv", ["x"], {"period_site_id": "Int64"}) == len(whole)
    expected = whole.astype({"period_site_id": "Int64"}).to_csv(index=False)
    assert (tmp_path / "t.csv").read_text() == expected
    if n_frames > 1:  # the case tests what it says: columns typed differently across the overpasses
        kinds = {c: {str(f[c].dtype) for f in frames if c in f} for c in whole.columns}
        assert len(kinds["period_site_id"]) >= 2 and len(kinds["n_transects"]) == 2 and len(kinds["mixed"]) >= 2
        assert "1.0" in expected and "wind_source" in expected.splitlines()[0]


def test_no_rows_gives_a_header(tmp_path):
    write_rows(tmp_path / "e.pkl", pd.DataFrame())
    rows = SpooledRows([tmp_path / "e.pkl"])
    assert rows.narrow(["a"]).empty
    assert rows.write_csv(tmp_path / "t.csv", ["a", "b"]) == 0
    assert (tmp_path / "t.csv").read_text().strip() == "a,b"


def test_type_rows_keep_each_type_and_a_missing_value():
    f = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0, 5.0, np.nan], "b": [None, "x", "y", 3, "z", 7], "c": range(6)})
    t = type_rows(f)
    assert len(t) < len(f)
    assert t["a"].isna().any() and t["a"].notna().any()
    assert {type(v) for v in t["b"]} == {type(None), str, int}
    pd.testing.assert_series_equal(t.dtypes, f.dtypes)
