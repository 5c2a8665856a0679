"""``python -m no2hotspots.plots_offline``: an HTML template that makes ``dvc plots show/diff`` work offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so on an air-gapped machine (or behind a proxy)
the plots page is blank. This fetches the same versions DVC's renderer targets from the npm registry once
(``npm pack``, into ``.cache/plots/``), inlines them into a template and points DVC at it (``.dvc/config``:
``plots.html_template``). ``make venv`` runs it; without npm it says so and DVC keeps its default (CDN) page.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

log = logging.getLogger(__name__)

#: the versions dvc-render's vega renderer loads (dvc_render/vega.py SCRIPTS)
PACKAGES = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}
TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <title>DVC Plot</title>
    <meta charset="utf-8">
%s
    <style>
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>"""


def build(root: Path) -> Path | None:
    """Write ``<root>/.cache/plots/offline.html``; return its path, or None when npm is not available."""
    cache = root / ".cache" / "plots"
    target = cache / "offline.html"
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        log.warning("npm not found: `dvc plots show` keeps DVC's default page (vega from a CDN)")
        return None
    cache.mkdir(parents=True, exist_ok=True)
    scripts = []
    for name, version in PACKAGES.items():
        tgz = cache / f"{name}-{version}.tgz"
        if not tgz.exists():
            subprocess.run(
                [npm, "pack", f"{name}@{version}", "--silent"], cwd=cache, check=True, capture_output=True, timeout=300
            )
        with tarfile.open(tgz) as tar:
            js = tar.extractfile(f"package/build/{name}.min.js").read().decode("utf8")
        scripts.append(f"    <script>/* {name} {version} (npm) */\n{js}\n    </script>")
    tmp = target.with_suffix(".tmp")
    tmp.write_text(TEMPLATE % "\n".join(scripts), encoding="utf8")
    tmp.replace(target)
    return target


def configure(root: Path, template: Path) -> None:
    """Point DVC at the template (a path relative to .dvc/, as DVC resolves it)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dvc",
            "config",
            "--local",
            "plots.html_template",
            str(Path("..") / template.relative_to(root)),
        ],
        cwd=root,
        check=True,
        capture_output=True,
    )


def main() -> int:
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    root = Path.cwd()
    try:
        template = build(root)
    except (subprocess.SubprocessError, OSError, KeyError) as e:
        log.warning("offline plots template not built (%s): `dvc plots show` keeps DVC's default page", e)
        return 0
    if template is not None:
        configure(root, template)
        log.info("dvc plots render offline with %s", template)
    return 0


if __name__ == "__main__":
    sys.exit(main())
