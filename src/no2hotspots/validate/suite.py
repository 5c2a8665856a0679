"""Run data-quality expectations, described as plain data, over pandas tables with great-expectations, in process.

An expectation is a mapping as it appears in ``conf/validate/*.yaml``::

    {type: expect_column_max_to_be_between, column: emission_max, max_value: 1.0, label: "relative emission <= 1"}

``type`` names any great-expectations 1.x expectation (snake case); ``label`` (optional) is a short human meaning
for the report; every other key is passed to the expectation unchanged. A suite is a set of named tables
(e.g. ``scenes``, ``dataset``) each with its list of expectations. :func:`run_suite` validates them in an ephemeral
great-expectations context (nothing written to disk by GX, progress bars off), writes a JSON and a Markdown report
atomically, and raises :class:`~no2hotspots.errors.ValidationFailed` naming each failed expectation when asked to.

great_expectations is imported lazily (the import costs several seconds); this module is cheap to import.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_json, write_text
from ..errors import ConfigError, ValidationFailed

log = logging.getLogger(__name__)

#: keys of an expectation spec that are ours, not the expectation's
_OWN_KEYS = ("type", "label")


@dataclass
class Outcome:
    """The result of one expectation."""

    table: str
    type: str
    kwargs: dict
    label: str  # what is checked, from type and kwargs, e.g. ``emission_max <= 1``
    success: bool
    observed: Any
    details: dict = field(default_factory=dict)
    error: str | None = None
    meaning: str = ""  # the spec's optional human ``label``

    @property
    def short(self) -> str:
        """One-line form, e.g. ``expect_column_max_to_be_between(emission_max <= 1): observed 1.3``."""
        return f"{self.type}({self.label}): {_observed_text(self)}"

    def as_dict(self) -> dict:
        return {
            "table": self.table,
            "type": self.type,
            "kwargs": self.kwargs,
            "label": self.label,
            "meaning": self.meaning,
            "success": self.success,
            "observed": _jsonable(self.observed),
            "details": _jsonable(self.details),
            "error": self.error,
            "short": self.short,
        }


@dataclass
class SuiteResult:
    """All outcomes of a suite and where its report lies."""

    name: str
    outcomes: list[Outcome]
    report_json: Path | None = None
    report_md: Path | None = None
    tables: dict[str, int] = field(default_factory=dict)  # table name -> rows

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    def failure_message(self) -> str:
        fails = "; ".join(o.short for o in self.failures)
        where = f" (report: {self.report_md or self.report_json})" if (self.report_md or self.report_json) else ""
        return f"suite {self.name!r}: {len(self.failures)} of {len(self.outcomes)} expectations failed: {fails}{where}"

    def raise_if_failed(self) -> None:
        if not self.success:
            raise ValidationFailed(self.failure_message())

    def as_dict(self) -> dict:
        return {
            "suite": self.name,
            "success": self.success,
            "n_expectations": len(self.outcomes),
            "n_failed": len(self.failures),
            "failed": [o.short for o in self.failures],
            "tables": self.tables,
            "results": [o.as_dict() for o in self.outcomes],
        }


# ----------------------------------------------------------------------------------------------------------------
# great-expectations plumbing (lazy)

_CONTEXT = None


def _context():
    """One ephemeral GX context per process (no project folder on disk), with progress bars off."""
    global _CONTEXT
    if _CONTEXT is None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        _CONTEXT = ctx
    return _CONTEXT


def _expectation_class(type_name: str, where: str):
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        return get_expectation_impl(type_name)
    except Exception as e:  # noqa: BLE001 - GX raises its own not-found type
        raise ConfigError(where, f"unknown great-expectations expectation type {type_name!r}") from e


def _build(spec: Mapping, where: str):
    """Turn one plain spec into a GX expectation object (and its kwargs and label)."""
    spec = dict(spec)
    type_name = spec.get("type")
    if not isinstance(type_name, str) or not type_name.startswith("expect_"):
        raise ConfigError(where, "each expectation needs `type: expect_...`")
    kwargs = {k: _plain(v) for k, v in spec.items() if k not in _OWN_KEYS}
    cls = _expectation_class(type_name, where)
    try:
        exp = cls(**kwargs)
    except Exception as e:  # noqa: BLE001 - pydantic validation error: a config mistake
        problem = str(e).splitlines()
        raise ConfigError(where, f"invalid arguments for {type_name}: {' '.join(problem[:3])}") from e
    return exp, type_name, kwargs, str(spec.get("label") or "")


def _plain(v):
    """OmegaConf containers -> plain Python."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(v, (DictConfig, ListConfig)):
            return OmegaConf.to_container(v, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return v


def run_suite(
    tables: Mapping[str, Any],
    expectations: Mapping[str, Iterable[Mapping]],
    *,
    name: str,
    report_path: str | os.PathLike | None,
    config_key: str = "validate",
    raise_on_failure: bool = True,
    extra: Mapping | None = None,
) -> SuiteResult:
    """Validate each ``tables[t]`` (a pandas DataFrame) against ``expectations[t]`` and write the report.

    ``report_path`` is the JSON report (``.json``); the Markdown report goes beside it with ``.md``. ``config_key``
    names where the expectations came from (used in ConfigError messages). ``extra`` is added to the JSON report.
    Raises :class:`ValidationFailed` (after writing the report) if any expectation fails and ``raise_on_failure``.
    """
    import great_expectations as gx

    ctx = _context()
    outcomes: list[Outcome] = []
    sizes: dict[str, int] = {}
    for table_name, specs in expectations.items():
        specs = list(specs or [])
        if not specs:
            continue
        if table_name not in tables:
            raise ConfigError(
                f"{config_key}.{table_name}", f"no table {table_name!r} to validate (tables: {', '.join(tables)})"
            )
        df = tables[table_name]
        sizes[table_name] = int(len(df))
        built = [_build(s, f"{config_key}.{table_name}[{i}]") for i, s in enumerate(specs)]
        suite = gx.ExpectationSuite(name=f"{name}.{table_name}")
        for i, (exp, *_rest) in enumerate(built):
            exp.meta = {"index": i}
            suite.add_expectation(exp)
        batch = _batch(ctx, name, table_name, df)
        res = batch.validate(suite)
        by_index: dict[int, Any] = {}
        for r in res.results:
            meta = r.expectation_config.meta or {}
            by_index[int(meta.get("index", -1))] = r
        for i, (_exp, type_name, kwargs, meaning) in enumerate(built):
            o = _outcome(table_name, type_name, kwargs, _auto_label(type_name, kwargs), by_index.get(i))
            o.meaning = meaning
            outcomes.append(o)
    result = SuiteResult(name=name, outcomes=outcomes, tables=sizes)
    if report_path is not None:
        write_report(result, report_path, extra=extra)
    level = logging.INFO if result.success else logging.ERROR
    log.log(level, "suite %s: %d/%d expectations passed", name, len(outcomes) - len(result.failures), len(outcomes))
    if raise_on_failure:
        result.raise_if_failed()
    return result


def validate_table(df, expectations: Iterable[Mapping], **kwargs) -> SuiteResult:
    """Single-table convenience form of :func:`run_suite` (the table is called ``table``)."""
    return run_suite({"table": df}, {"table": list(expectations)}, **kwargs)


_ASSETS: dict[tuple[str, str], Any] = {}


def _batch(ctx, suite_name: str, table_name: str, df):
    """A whole-dataframe batch of ``df`` on an in-memory pandas data source (re-used across calls)."""
    key = (suite_name, table_name)
    bd = _ASSETS.get(key)
    if bd is None:
        ds_name = f"no2hotspots-{suite_name}"
        try:
            ds = ctx.data_sources.get(ds_name)
        except Exception:  # noqa: BLE001 - not there yet
            ds = ctx.data_sources.add_pandas(ds_name)
        asset = ds.add_dataframe_asset(table_name)
        bd = asset.add_batch_definition_whole_dataframe("whole")
        _ASSETS[key] = bd
    return bd.get_batch(batch_parameters={"dataframe": df})


def _outcome(table: str, type_name: str, kwargs: dict, label: str, r) -> Outcome:
    if r is None:  # pragma: no cover - GX always returns one result per expectation
        return Outcome(table, type_name, kwargs, label, False, None, error="no result returned")
    d = r.to_json_dict()
    result = d.get("result") or {}
    exc = d.get("exception_info") or {}
    error = None
    if exc.get("raised_exception"):
        error = exc.get("exception_message")
    else:  # GX nests exception info per metric when a metric fails
        for v in exc.values() if isinstance(exc, dict) else ():
            if isinstance(v, dict) and v.get("raised_exception"):
                error = v.get("exception_message")
                break
    observed = result.get("observed_value")
    details = {k: v for k, v in result.items() if k != "observed_value"}
    success = bool(d.get("success")) and error is None
    return Outcome(table, type_name, kwargs, label, success, observed, details=details, error=error)


# ----------------------------------------------------------------------------------------------------------------
# labels and observed values in one line


def _num(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.6g}"
    return str(v)


def _auto_label(type_name: str, kwargs: dict) -> str:
    subject = kwargs.get("column")
    if subject is None and "column_A" in kwargs:
        subject = f"{kwargs['column_A']}, {kwargs.get('column_B')}"
    if subject is None:
        subject = "rows" if "row_count" in type_name else "table"
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if lo is not None and hi is not None:
        return f"{_num(lo)} <= {subject} <= {_num(hi)}" if lo != hi else f"{subject} == {_num(lo)}"
    if hi is not None:
        return f"{subject} <= {_num(hi)}"
    if lo is not None:
        return f"{subject} >= {_num(lo)}"
    if "value_set" in kwargs:
        vs = list(kwargs["value_set"])
        return f"{subject} in {{{', '.join(_num(v) for v in vs[:6])}{', ...' if len(vs) > 6 else ''}}}"
    if "value" in kwargs:
        return f"{subject} == {_num(kwargs['value'])}"
    return str(subject)


def _observed_text(o: Outcome) -> str:
    if o.error:
        return f"error: {o.error.splitlines()[0] if o.error else ''}"
    d = o.details
    if "unexpected_count" in d and d.get("unexpected_count") is not None:
        n = d.get("unexpected_count", 0)
        total = d.get("element_count", "?")
        sample = d.get("partial_unexpected_list") or []
        idx = d.get("partial_unexpected_index_list") or []
        text = f"{n} of {total} rows unexpected"
        if sample:
            text += " e.g. " + ", ".join(_num(_scalar(v)) for v in sample[:3])
        if idx:
            text += " at " + ", ".join(str(_scalar(i)) for i in idx[:3])
        return text
    if o.observed is not None:
        return f"observed {_num(_scalar(o.observed))}"
    return "passed" if o.success else "failed"


def _scalar(v):
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
    except ImportError:  # pragma: no cover
        pass
    return v


def _jsonable(v):
    """Make GX result values JSON-friendly (numpy scalars, NaN -> None, nested containers)."""
    v = _scalar(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


# ----------------------------------------------------------------------------------------------------------------
# reports


def write_report(result: SuiteResult, report_path: str | os.PathLike, *, extra: Mapping | None = None) -> None:
    """Write ``report_path`` (JSON) and the same name with ``.md`` (readable), each atomically."""
    report_path = Path(report_path)
    md_path = report_path.with_suffix(".md")
    result.report_json, result.report_md = report_path, md_path
    doc = result.as_dict()  # no timestamp: the same data gives the same report, so DVC does not re-run what follows
    if extra:
        doc["extra"] = _jsonable(dict(extra))
    write_json(report_path, doc)
    write_text(md_path, markdown(result, extra=extra))


def markdown(result: SuiteResult, *, extra: Mapping | None = None) -> str:
    status = "PASSED" if result.success else "FAILED"
    lines = [
        f"# Validation report: {result.name}",
        "",
        f"**{status}**: {len(result.outcomes) - len(result.failures)} of {len(result.outcomes)} expectations passed.",
        "",
    ]
    if result.failures:
        lines += ["## Failed expectations", ""]
        lines += [f"- `{o.table}`: {o.short}" + (f" ({o.meaning})" if o.meaning else "") for o in result.failures]
        lines.append("")
    if result.tables:
        lines += ["## Tables", ""]
        lines += [f"- `{t}`: {n} rows" for t, n in result.tables.items()]
        lines.append("")
    lines += [
        "## All expectations",
        "",
        "| table | result | expectation | check | meaning | observed |",
        "|---|---|---|---|---|---|",
    ]
    for o in result.outcomes:
        mark = "ok" if o.success else "**FAIL**"
        cells = [o.table, mark, f"`{o.type}`", o.label, o.meaning, _observed_text(o)]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    if extra:
        lines += ["", "## Context", ""]
        for k, v in extra.items():
            lines.append(f"- {k}: {_jsonable(v)}")
    return "\n".join(lines) + "\n"


SUITES_DIR = Path(__file__).parent / "suites"


def load_expectations(name: str, section) -> dict:
    """The expectation lists of suite ``name`` (``simulated``, ``grid``): the packaged
    ``validate/suites/<name>.yaml`` or the YAML file at ``section.expectations``, with ``${tolerances.KEY}``
    resolved against ``section`` (the ``validate.<name>`` config, so tolerances stay config keys)."""
    from omegaconf import OmegaConf

    key = f"validate.{name}.expectations"
    path = section.get("expectations") if hasattr(section, "get") else None
    path = Path(path) if path else SUITES_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(key, f"suite file {path} not found")
    try:
        suite = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001 - a broken YAML file is the user's mistake
        raise ConfigError(key, f"{path} is not valid YAML ({type(e).__name__})") from None
    values = OmegaConf.to_container(section, resolve=True) if OmegaConf.is_config(section) else dict(section)
    tolerances = {k: v for k, v in values.items() if k != "expectations"}
    merged = OmegaConf.merge({"tolerances": tolerances}, {"suite": suite})
    try:
        return OmegaConf.to_container(merged, resolve=True)["suite"]
    except Exception as e:  # noqa: BLE001 - e.g. ${tolerances.KEY} naming a key the config lacks
        raise ConfigError(key, f"{path}: {str(e).splitlines()[0]}") from None
