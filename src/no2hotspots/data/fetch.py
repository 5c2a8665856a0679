"""Fill ``data/`` with the embedded default inputs from the ddeq 1.1 wheel on PyPI, verifying every SHA-256.

The wheel is obtained with ``pip download ddeq==1.1 --no-deps`` (nothing is installed) into ``.cache/`` and the
real sample files are extracted from it: the TROPOMI L2 NO2 crop over Matimba/Medupi (25 July 2021), its ERA5 files
and the CoCO2 global power-plant catalogue. Files already present with the right checksum are left alone, so the
command is idempotent; a file present with the wrong checksum is an error (it may be the user's own data).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from omegaconf import DictConfig

from ..atomic import atomic_path
from ..errors import InputFileError, UserError

log = logging.getLogger(__name__)

CACHE_DIR = Path(".cache") / "wheels"


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download_wheel(package: str, dest: Path, expected_sha256: str) -> Path:
    """Return the path of the wheel for ``package`` (``name==version``), downloading it with pip if needed."""
    name, _, version = package.partition("==")
    dest.mkdir(parents=True, exist_ok=True)
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(dest.glob(pattern))
    if not found:
        log.info("downloading %s from the package index (pip download --no-deps)", package)
        # into a private folder, then renamed: another process looking for the wheel meanwhile (a second `make
        # data`, the test workers) never finds it half-written
        with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", package, "--no-deps", "--only-binary=:all:", "-d", tmp],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise UserError(
                    f"could not download {package} from the package index ({last}); check network access to PyPI "
                    f"or copy the wheel into {dest}/"
                )
            for wheel in Path(tmp).glob(pattern):
                os.replace(wheel, dest / wheel.name)
        found = sorted(dest.glob(pattern))
        if not found:
            raise UserError(f"pip download {package} succeeded but no wheel matching {pattern} is in {dest}/")
    wheel = found[0]
    digest = sha256(wheel)
    if digest != expected_sha256:
        raise InputFileError(
            wheel, f"SHA-256 {digest} differs from the expected {expected_sha256}; delete it and retry"
        )
    return wheel


def extract(wheel: Path, files, data_dir: Path) -> list[Path]:
    """Extract the listed members into ``data_dir`` atomically, verifying each SHA-256."""
    written = []
    with zipfile.ZipFile(wheel) as zf:
        for spec in files:
            target = data_dir / spec.dest
            if target.exists():
                digest = sha256(target)
                if digest == spec.sha256:
                    log.info("ok       %s", target)
                    continue
                raise InputFileError(
                    target,
                    f"exists with SHA-256 {digest}, not the embedded default's; "
                    "move it away or keep it and skip `make data`",
                )
            try:
                data = zf.read(spec.member)
            except KeyError:
                raise InputFileError(wheel, f"has no member {spec.member}") from None
            digest = hashlib.sha256(data).hexdigest()
            if digest != spec.sha256:
                raise InputFileError(
                    f"{wheel}!{spec.member}", f"SHA-256 {digest} differs from the expected {spec.sha256}"
                )
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
            log.info("written  %s", target)
            written.append(target)
    return written


def run(cfg: DictConfig) -> None:
    data_dir = Path(cfg.paths.data)
    if cfg.data.source != "ddeq":
        log.info("data.source=%s: nothing to fetch, using the files already in %s/", cfg.data.source, data_dir)
        return
    wheel = download_wheel(cfg.data.package, CACHE_DIR, cfg.data.wheel_sha256)
    extract(wheel, cfg.data.files, data_dir)
    log.info("embedded default inputs ready in %s/ (%d files verified)", data_dir, len(cfg.data.files))
