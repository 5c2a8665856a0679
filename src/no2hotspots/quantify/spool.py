"""Estimate rows spooled per overpass: each overpass unit writes its rows to files (the resume cache's folder, or a
temporary one), and the stage process reads them back one file at a time, never a whole period's rows at once.

Two reads per kind of rows (hotspots, sites): :meth:`SpooledRows.narrow` gathers the few columns the stage's own
tables and the evaluation need (a float column costs 8 bytes a row; the ~50 columns of a full row stay on disk) and
on the way learns each column's type; :meth:`SpooledRows.write_csv` then streams every column into a CSV, each file's
rows cast to those types. The tables come out as ``pd.concat(frames).infer_objects().to_csv()`` of all rows at once
would write them, byte for byte (tested), with memory that does not grow with the period.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

#: the kinds of estimate rows an overpass writes (one file each)
KINDS = ("hotspots", "sites")


def rows_file(key: str, kind: str) -> str:
    """The file name of an overpass's rows of one kind."""
    return f"{key}.{kind}.pkl"


def write_rows(path: Path, frame: pd.DataFrame) -> None:
    path.write_bytes(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))


def read_rows(path: str | Path) -> pd.DataFrame:
    with open(path, "rb") as f:
        return pickle.load(f)


def type_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` that decide the types ``pd.concat([..., frame, ...]).infer_objects()`` gives its columns:
    per column its first value and first missing value, and in an object column the first value of each Python
    type. Concatenating these rows of every frame types each column as concatenating the whole frames would."""
    keep: set[int] = set()
    for c in frame.columns:
        col = frame[c]
        na = col.isna().to_numpy()
        for mask in (~na, na):
            if mask.any():
                keep.add(int(np.argmax(mask)))
        if col.dtype == object:
            keep.update(int(i) for i in pd.Series(col.map(type).to_numpy()).drop_duplicates().index)
    return frame.iloc[sorted(keep)]


class SpooledRows:
    """One kind of estimate rows of every overpass, in its files (overpass order; files of units without rows of
    this kind are not listed)."""

    def __init__(self, files: Iterable[str | Path]):
        self.files = [Path(f) for f in files]
        self._types: pd.DataFrame | None = None

    def frames(self) -> Iterator[pd.DataFrame]:
        for f in self.files:
            frame = read_rows(f)
            if len(frame):
                yield frame

    def narrow(self, columns: Iterable[str]) -> pd.DataFrame:
        """The listed columns of every row (those that exist), typed as in the whole table; learns the table's
        column order and types on the way."""
        columns = list(columns)
        parts, types = [], []
        for frame in self.frames():
            parts.append(frame[[c for c in columns if c in frame.columns]])
            types.append(type_rows(frame))
            if len(types) >= 256:  # the type rows of the type rows: the same types, fewer rows
                types = [type_rows(pd.concat(types, ignore_index=True, sort=False))]
        self._types = pd.concat(types, ignore_index=True, sort=False).infer_objects() if types else None
        if not parts:
            return pd.DataFrame()
        return pd.concat(parts, ignore_index=True, sort=False).infer_objects()

    @property
    def dtypes(self) -> pd.Series:
        """Column order and types of the whole table (empty without rows)."""
        if self._types is None and self.files:
            self.narrow([])
        return self._types.dtypes if self._types is not None else pd.Series(dtype=object)

    def write_csv(self, path: str | Path, empty_columns: Iterable[str], casts: Mapping[str, str] | None = None) -> int:
        """Every row into ``path`` as one table (``empty_columns``: the header where there is no row; ``casts``:
        column -> type after the table's own, e.g. an integer column with missing values as ``Int64``). Returns
        the number of rows."""
        dtypes = self.dtypes.copy()
        for c, t in (casts or {}).items():
            if c in dtypes:
                dtypes[c] = pd.api.types.pandas_dtype(t)
        n = 0
        with open(path, "w", newline="") as f:
            if dtypes.empty:
                pd.DataFrame(columns=list(empty_columns)).to_csv(f, index=False)
                return 0
            for frame in self.frames():
                frame = frame.reindex(columns=dtypes.index)
                frame = frame.astype({c: t for c, t in dtypes.items() if frame[c].dtype != t})
                frame.to_csv(f, index=False, header=n == 0)
                n += len(frame)
        return n
