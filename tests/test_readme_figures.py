"""The README quotes the committed run: its OSSE table, Table 1, the quantify table, the Matimba counts and the targets
table must equal the committed ``metrics/``.

A new committed run (``dvc.lock`` and ``metrics/`` from another ``make demo``) fails these tests until the README's
tables say what the run says; each failure prints the row as the committed metrics give it.
"""

from __future__ import annotations

import json
import subprocess
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from no2hotspots.headline import BINS, f1

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("model", "composite", "hybrid", "baseline")


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _metrics(name: str) -> dict:
    """The COMMITTED metrics file (``git show HEAD:metrics/NAME``), not the working tree's: after a ``make demo`` on
    another machine (other CPUs give other figures) the workspace holds that run's metrics, which the README does not
    quote; the committed run is what it quotes."""
    try:
        text = subprocess.run(
            ["git", "show", f"HEAD:metrics/{name}"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the committed metrics are not at hand")
    return json.loads(text)


def _pct(v: float) -> str:
    """A rate as the README's OSSE table prints it: 100 for 1.0, else one decimal."""
    return "100" if v == 1.0 else f"{100 * v:.1f}"


def osse_rows(d: dict) -> list[str]:
    """The OSSE table's body rows (strict rates, chance floor, site precision, recall, F1s, CO2 row's counts)."""
    names = {"gt5000": "> 5000", "4000_5000": "4000–5000", "2000_4000": "2000–4000", "lt2000": "< 2000"}
    paper = {"gt5000": "89", "4000_5000": "100", "2000_4000": "78", "lt2000": "67"}
    rows = []
    for i, b in enumerate(BINS):
        total = d[f"hybrid/table2_total_{b}"]
        label = f"{names[b]} ({total} cells)" if i == 0 else f"{names[b]} ({total})"
        cells = []
        for t in TABLES:
            rule, strict = _pct(d[f"{t}/table2_rate_{b}"]), _pct(d[f"{t}/table2_strict_rate_{b}"])
            cells.append(f"{rule} / **{strict}**" if t == "hybrid" else f"{rule} / {strict}")
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {paper[b]} |")
    floor = [f"{100 * d[f'{t}/chance_floor']:.1f}" for t in TABLES]
    floor[0] = f"**{floor[0]}**"
    rows.append("| chance floor | " + " | ".join(floor) + " | – |")
    prec = [
        f"{100 * d[f'{t}/site_precision']:.1f} % ({d[f'{t}/n_sites_matched']} of {d[f'{t}/n_sites']}"
        + (" sites)" if t == "model" else ")")
        for t in TABLES
    ]
    prec[2] = prec[2].replace(
        f"{100 * d['hybrid/site_precision']:.1f} %", f"**{100 * d['hybrid/site_precision']:.1f} %**"
    )
    rows.append("| site precision | " + " | ".join(prec) + " | – |")
    rows.append(
        "| source recall (nearest rule) | "
        + " | ".join(f"{d[f'{t}/source_recall_nearest']:.3f}" for t in TABLES)
        + " | – |"
    )
    overall = [f"{f1(d[f'{t}/site_precision'], d[f'{t}/source_recall_nearest']):.3f}" for t in TABLES]
    overall[2] = f"**{overall[2]}**"
    rows.append("| F1 (overall) | " + " | ".join(overall) + " | – |")
    by_bin = [
        " / ".join(f"{f1(d[f'{t}/site_precision'], d[f'{t}/table2_strict_rate_{b}']):.2f}" for b in BINS)
        for t in TABLES
    ]
    rows.append(
        "| F1 by bin (site precision with the bin's strict rate; > 5000 / 4–5k / 2–4k / < 2000) | "
        + " | ".join(by_bin)
        + " | – |"
    )
    return rows


def table1_rows(score: dict, split: str) -> list[str]:
    rows = []
    labels = {"all": "all", "low": "low (< 0.33)", "mid": "mid", "high": "high (> 0.66)"}
    paper = {"all": "80 / > 94", "low": "79 / –", "mid": "–", "high": "– / 83"}
    for c, label in labels.items():
        every, visible = (
            " / ".join(f"{100 * score[split]['mark'][conv][f'pixel_recall_q{q}_{c}']:.1f}" for q in (1, 2, 3))
            for conv in ("every", "visible")
        )
        if c == "all":
            every = f"**{every}**"
        rows.append(f"| {label} | {every} | {visible} | {paper[c]} |")
    return rows


def _missing(rows: list[str]) -> list[str]:
    text = _readme()
    return [r for r in rows if r not in text]


def test_osse_table_is_the_committed_run():
    missing = _missing(osse_rows(_metrics("evaluate_osse.json")))
    assert not missing, (
        "README's OSSE table differs from metrics/evaluate_osse.json; the rows should read:\n" + "\n".join(missing)
    )


@pytest.mark.parametrize("split", ["test", "paper_world"])
def test_table1_is_the_committed_run(split):
    missing = _missing(table1_rows(_metrics("score.json"), split))
    assert not missing, (
        f"README's Table 1 ({split}) differs from metrics/score.json; the rows should read:\n" + "\n".join(missing)
    )


def test_targets_table_quotes_the_headline():
    h = _metrics("headline.json")["headline"]
    row = next(line for line in _readme().splitlines() if line.startswith("| strict Table 2, period product"))
    # the full-precision rates of evaluate_osse.json, as the OSSE table prints them (headline.json's are rounded to 4
    # decimals: 28/29 = 0.9655 -> 96.5 there, 96.6 in the table)
    e = _metrics("evaluate_osse.json")
    strict = " / ".join(_pct(e[f"hybrid/table2_strict_rate_{b}"]) for b in BINS)
    assert strict in row.replace("**", ""), f"README's targets table should quote the hybrid's strict rates {strict}"
    text = _readme()
    ratio = h["osse.hybrid.table2_strict_lt2000"] / h["osse.hybrid.chance_floor"]
    for needle in (
        f"{100 * h['osse.hybrid.site_precision']:.1f} %; {ratio:.1f}×",
        f"hybrid {h['osse.hybrid.f1']:.3f} against {h['osse.baseline.f1']:.3f} overall",
        f"the model alone (composite) {h['osse.composite.f1']:.3f}",
        f"| {h['matimba.sites_found_ge5kt']} of {h['matimba.sites_observed_ge5kt']} (two of the eight",
        f"{100 * h['sim.pair_recall_ge3px']:.1f} % (",
    ):
        assert needle in text, f"README's targets table should quote {needle!r} (metrics/headline.json)"


def _percent0(v: float) -> str:
    """A share as a whole percent, rounded half up as the README prints it (62.5 -> 63)."""
    return str(Decimal(repr(100 * v)).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def quantify_rows(q: dict) -> list[str]:
    """The quantify table's rows: median |ln ratio|, median ratio, 68 % coverage per method and level."""
    ev, methods = q["evaluation"], ("csf", "divergence", "ime")
    labels = {
        "period_acceptance": "period, composite sites > 5 kt NOx/yr with ≥ 3 estimates",
        "period": "period, all composite sites with a truth",
        "overpass": "single overpasses",
    }
    rows = []
    for level, label in labels.items():
        n = " / ".join(f"{ev[level][m]['n']:,}" for m in methods)
        cells = [
            f"{ev[level][m]['median_abs_log_ratio']:.3f}, {ev[level][m]['median_ratio']:.2f}, "
            f"{_percent0(ev[level][m]['coverage_68'])} %"
            for m in methods
        ]
        rows.append(f"| {label} (n = {n}) | " + " | ".join(cells) + " |")
    return rows


def test_quantify_table_is_the_committed_run():
    missing = _missing(quantify_rows(_metrics("quantify_osse.json")))
    assert not missing, "README's quantify table differs from metrics/quantify_osse.json; the rows should read:\n" + (
        "\n".join(missing)
    )


def test_matimba_counts_are_the_committed_run():
    m, h = _metrics("evaluate_matimba.json"), _metrics("headline.json")["headline"]
    n, near = m["model/n_hotspots"], m["model/n_sites_matched"]
    found, seen = h["matimba.sites_found_ge5kt"], h["matimba.sites_observed_ge5kt"]
    text = _readme()
    for needle in (
        f"In the committed run the model finds {n} hotspots",
        f"{found} of the {seen} CoCO2 sites > 5 kt NOx/yr with valid pixels",
        f"{near} of the {n} hotspots ({100 * near / n:.0f} %)",
    ):
        assert needle in text, f"README's Matimba section should read {needle!r} (metrics/evaluate_matimba.json)"


def test_time_series_counts_are_the_committed_run():
    """The OSSE section's time-series sentence: the unchanged sources and the sites flagged as changed."""
    m = _metrics("evaluate_osse.json")
    unchanged = m["inventory/n_sources"] - m["timeseries/injected_n"]
    text = " ".join(_readme().split())  # the sentence wraps across lines
    for needle in (
        f"{m['timeseries/flagged_unchanged_sources']} of the {unchanged} sources without a change",
        f"{m['timeseries/n_flagged_sites']} of the {m['timeseries/n_sites']} per-overpass hotspot sites",
    ):
        assert needle in text, f"README's time-series sentence should read {needle!r} (metrics/evaluate_osse.json)"


def test_osse_rows_change_with_the_metrics():
    """The check is not vacuous: another run's figures give other rows, which the README does not hold."""
    d = dict(_metrics("evaluate_osse.json"))
    d["hybrid/table2_strict_rate_lt2000"] = 0.5
    assert _missing(osse_rows(d)), "a changed strict rate must give a row the README does not hold"
