"""Helpers for the osse tests: a tiny region (Taiyuan, a handful of large CoCO2 plants) for a few days."""

from __future__ import annotations

import hashlib
from pathlib import Path

from no2hotspots.config import compose

BBOX = "[111.0,37.3,112.5,38.5]"
TINY = [
    "osse.dates.days=3",
    f"osse.region.bbox={BBOX}",
    "osse.transport.release_hours=4",
    "osse.region.margin_deg=0.1",
    "osse.changes=[]",  # the demo's change names a plant outside this region
]


def osse_cfg(data_dir, out, extra=()):
    """The tiny OSSE writing below ``out`` (outputs and unit folder), in process unless ``extra`` says otherwise."""
    return compose([f"paths.data={data_dir}", f"paths.outputs={out}", *TINY, "parallel.scheduler=sync", *extra])


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
