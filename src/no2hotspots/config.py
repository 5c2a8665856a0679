"""Configuration: the Hydra tree in ``conf/`` is the single source of truth, and there is one way into it.

- :func:`load_config` is what every entry point uses. Without ``params`` it *composes* ``conf/config.yaml`` with
  Hydra and the given overrides, exactly like ``python -m no2hotspots.train key=value`` and ``dvc exp run -S``:
  config groups are switchable (``osse=china_year``), any key can be set (``seed=7``), keys derived by
  interpolation follow (``train.seed: ${seed}``), and an unknown key is refused with the nearest valid name.
  With ``params`` (a file DVC composed: ``params.yaml``) it runs that file as it is; overrides then set existing
  leaf keys only (refused otherwise). The file holds resolved values, so a key that other keys are derived from
  (``paths.outputs``, ``seed``, ``detect.out_dir``, ...: any key ``conf/`` interpolates) is refused too: its
  derived keys would silently keep the file's values.
- ``params.yaml`` (what DVC stages read and track) is the composition with no overrides, interpolations resolved;
  ``make params`` writes it and a test fails if it drifts. DVC stage commands pass ``--params params.yaml``.
"""

from __future__ import annotations

import difflib
import functools
import logging
import math
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"
#: plain names for collections and other things that become file or folder names
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def compose(overrides: Iterable[str] = (), config_dir: str | os.PathLike = CONF_DIR) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (the same composition DVC does for params.yaml).

    Overrides are checked first: an unknown key is a :class:`ConfigError` naming it and the nearest valid key.
    """
    overrides = list(overrides)
    config_dir = Path(config_dir).resolve()
    _check_overrides(overrides, config_dir)
    try:
        return _hydra_compose(overrides, config_dir)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - Hydra/OmegaConf composition errors are the user's overrides
        raise ConfigError(_failed_key(e, overrides) or "overrides", _first_line(e)) from None


def _hydra_compose(overrides: list[str], config_dir: Path) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def config_groups(config_dir: str | os.PathLike = CONF_DIR) -> set[str]:
    """Names of the config groups (folders of ``conf/``)."""
    return {p.name for p in Path(config_dir).iterdir() if p.is_dir()}


def _parse(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    try:
        return parser.parse_overrides(overrides)
    except Exception as e:  # noqa: BLE001 - a syntax error in an override: name the one that fails on its own
        bad = next((o for o in overrides if not _parses(parser, o)), None)
        key = _first_key([bad]) if bad is not None else _first_key(overrides)
        raise ConfigError(key or "overrides", f"bad override syntax ({_first_line(e)})") from None


def _parses(parser, override: str) -> bool:
    try:
        parser.parse_overrides([override])
    except Exception:  # noqa: BLE001
        return False
    return True


def _check_overrides(overrides: list[str], config_dir: Path) -> None:
    """Refuse overrides of keys that do not exist (``+key=value`` adds one on purpose)."""
    if not overrides:
        return
    parsed = _parse(overrides)
    groups = config_groups(config_dir)
    group_ovr = [o.input_line for o in parsed if o.key_or_group.split("/")[0] in groups and "." not in o.key_or_group]
    plain = [o for o in parsed if o.input_line not in group_ovr and not (o.is_add() or o.is_force_add())]
    plain = [o for o in plain if not o.key_or_group.startswith("hydra.") and o.key_or_group != "hydra"]
    if not plain:
        return
    try:
        base = _hydra_compose(group_ovr, config_dir)
    except Exception as e:  # noqa: BLE001 - e.g. an unknown group option
        raise ConfigError(_first_key(group_ovr) or "overrides", _first_line(e)) from None
    known = node_keys(base)
    for o in plain:
        if o.key_or_group not in known:
            raise ConfigError(o.key_or_group, unknown_key_hint(o.key_or_group, known))


def node_keys(cfg: DictConfig) -> set[str]:
    """Every dotted key of ``cfg``, inner nodes included (``a``, ``a.b``, ``a.b.c``), interpolations unresolved."""
    out: set[str] = set()

    def walk(node, prefix):
        for k in node:
            key = f"{prefix}{k}"
            out.add(key)
            child = node._get_node(k)
            if isinstance(child, DictConfig) and not child._is_none() and not child._is_interpolation():
                walk(child, key + ".")

    walk(cfg, "")
    return out


def unknown_key_hint(key: str, known: Iterable[str]) -> str:
    near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    if near:
        return f"unknown key; did you mean {near[0]}?"
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    siblings = sorted(k.rsplit(".", 1)[-1] for k in known if k.rsplit(".", 1)[0] == parent and "." in k)
    return "unknown key" + (f" (keys of {parent}: {', '.join(siblings[:12])})" if siblings else "")


def load_config(overrides: Iterable[str] = (), params: str | os.PathLike | None = None) -> DictConfig:
    """The configuration of one run: ``conf/`` composed with ``overrides``, or the composed file ``params``.

    See the module docstring. Without ``params``, a workspace ``params.yaml`` that differs from ``conf/`` (an
    experiment's parameters) is named in a warning, since this run composes ``conf/`` and not that file.
    """
    overrides = list(overrides)
    if params is not None:
        return load_params(params, overrides)
    cfg = compose(overrides)
    _warn_if_workspace_params_differ(overrides)
    return cfg


def _warn_if_workspace_params_differ(overrides: list[str]) -> None:
    path = Path("params.yaml")
    if not path.exists():
        return
    try:
        on_disk = flatten(OmegaConf.to_container(OmegaConf.load(path), resolve=False))
        plain = flatten(to_container(compose()))
    except Exception:  # noqa: BLE001 - a broken params.yaml is reported by the stages that read it
        return
    differ = sorted(k for k in set(on_disk) | set(plain) if on_disk.get(k) != plain.get(k))
    if differ:
        log.warning(
            "params.yaml differs from conf/ in %s%s; this run composes conf/ with your overrides (%s); "
            "to run params.yaml as it is, pass --params params.yaml",
            ", ".join(differ[:5]),
            " ..." if len(differ) > 5 else "",
            " ".join(overrides) or "none",
        )


def params_yaml_text(cfg: DictConfig) -> str:
    header = (
        "# GENERATED from conf/ by `make params` (Hydra composition of conf/config.yaml, interpolations resolved).\n"
        "# Do not edit by hand:\n"
        "# change conf/ or use `dvc exp run -S key=value`. A test fails if this file drifts from conf/.\n"
    )
    # resolved, exactly as DVC's Hydra composition writes it for `dvc exp run`: otherwise the same values written
    # once as `${seed}` and once as `42` would look like a parameter change to DVC and re-run every stage
    return header + OmegaConf.to_yaml(cfg, resolve=True)


def load_params(path: str | os.PathLike = "params.yaml", overrides: Iterable[str] = ()) -> DictConfig:
    """Load a composed parameter file (params.yaml) and set existing leaf keys from ``key=value`` overrides.

    The file holds resolved values, so keys derived from an overridden key keep the file's value; an unknown key
    or a config-group switch is a one-line :class:`ConfigError` (compose from ``conf/`` for those).
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "not found; run `make params` (or `dvc exp run`) to compose it from conf/")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001 - not YAML
        raise InputFileError(path, f"not a readable YAML file ({_first_line(e)})") from None
    if not isinstance(cfg, DictConfig):
        raise InputFileError(path, "not a mapping of config groups")
    overrides = list(overrides)
    if not overrides:
        return cfg
    known = node_keys(cfg)
    groups = config_groups()
    for o in _parse(overrides):
        key = o.key_or_group
        if o.is_delete() or o.is_add() or o.is_force_add():
            raise ConfigError(key, f"{o.input_line!r}: adding or deleting keys needs a composition from conf/")
        if key not in known:
            raise ConfigError(key, unknown_key_hint(key, known))
        if OmegaConf.is_config(OmegaConf.select(cfg, key)):
            if key in groups:
                raise ConfigError(key, f"switching a config group ({o.input_line}) composes from conf/: drop --params")
            raise ConfigError(key, f"is a config node, not a value; set its keys ({key}.<name>=...)")
        _refuse_interpolation_source(key, path)
        OmegaConf.update(cfg, key, _plain(o.value()), merge=False)
    return cfg


def _refuse_interpolation_source(key: str, path: Path) -> None:
    """A key other keys are derived from (``conf/`` interpolates it, or the node holding it) cannot be set in a
    composed file: the derived keys hold resolved values there and would silently keep them."""
    derived = sorted(
        {d for src, ds in interpolation_sources().items() if key == src or key.startswith(src + ".") for d in ds}
    )
    if derived:
        shown = ", ".join(derived[:3]) + (", ..." if len(derived) > 3 else "")
        raise ConfigError(
            key,
            f"other keys are derived from it ({shown}) and {path.name} holds their resolved values: run without "
            "--params (composes conf/ with this override) or override the derived keys instead",
        )


#: an interpolation's body up to the next ``$``, ``{`` or ``}`` (nested interpolations are found on their own)
_INTERPOLATION = re.compile(r"\$\{([^${}]*)")


@functools.lru_cache(maxsize=4)
def interpolation_sources(config_dir: str | os.PathLike = CONF_DIR) -> dict[str, tuple[str, ...]]:
    """Every key that a value in ``conf/`` interpolates (``${paths.outputs}``, ``${oc.select:a.b,...}``; resolvers
    such as ``${now:...}`` left out), with the keys whose values name it (group files prefixed by their group)."""
    out: dict[str, set[str]] = {}
    root = Path(config_dir)
    for f in sorted(root.rglob("*.yaml")):
        try:
            tree = OmegaConf.to_container(OmegaConf.load(f), resolve=False)
        except Exception:  # noqa: BLE001 - a broken conf file fails the composition itself, with its own message
            continue
        rel = f.relative_to(root).parent.parts
        head = f.read_text().lstrip()
        prefix = "" if not rel or head.startswith("# @package _global_") else ".".join(rel) + "."
        for key, text in _string_leaves(tree, prefix):
            for body in _INTERPOLATION.findall(text):
                source = _interpolated_key(body)
                if source:
                    out.setdefault(source, set()).add(key)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _string_leaves(node, prefix: str):
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, (dict, list)):
            yield from _string_leaves(v, key + ".")
        elif isinstance(v, str) and "${" in v:
            yield key, v


def _interpolated_key(body: str) -> str | None:
    """The key an interpolation body names (``a.b``; ``oc.select:a.b,default`` -> ``a.b``), None for a resolver."""
    if body.startswith("oc.select:"):
        body = body[len("oc.select:") :].split(",", 1)[0]
    body = body.strip().rstrip(".")
    if not body or ":" in body or body.startswith(".") or not re.fullmatch(r"[A-Za-z_][\w.-]*", body):
        return None
    return body


def _plain(value):
    """Hydra's parsed override value as plain Python (lists/dicts of it)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _failed_key(e: BaseException, overrides: list[str]) -> str | None:
    """The key of the override a composition error is about (Hydra quotes it), else the first override's."""
    text = str(e)
    for o in overrides:
        if o in text:
            return o.split("=", 1)[0].lstrip("+~")
    return _first_key(overrides)


def _first_key(overrides: Iterable[str]) -> str | None:
    for o in overrides:
        return str(o).split("=", 1)[0].lstrip("+~")
    return None


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def _required(cfg: DictConfig, key: str) -> Any:
    """``cfg[key]`` (dotted), or a one-line ConfigError naming the key when it is missing."""
    value = OmegaConf.select(cfg, key, default=_MISSING)
    if value is _MISSING:
        raise ConfigError(key, "missing")
    return value


def require(cfg: DictConfig, key: str, check: Callable[[Any], bool], problem: str) -> Any:
    """Return ``cfg[key]`` (dotted) if ``check(value)`` holds, else raise a one-line ConfigError naming the key."""
    value = _required(cfg, key)
    try:
        ok = bool(check(value))
    except Exception:  # noqa: BLE001 - a check that cannot even run means the value has the wrong type
        ok = False
    if not ok:
        raise ConfigError(key, f"{problem} (got {value!r})")
    return value


def require_int(cfg: DictConfig, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer key (no bool, no float: ``2.5`` is refused, never truncated), optionally in minimum..maximum."""
    return int_value(key, _required(cfg, key), minimum, maximum)


def require_bool(cfg: DictConfig, key: str) -> bool:
    """A boolean key (``true``/``false`` only: ``"false"``, ``0`` and ``1`` are refused, never converted)."""
    return bool_value(key, _required(cfg, key))


def require_odd_int(cfg: DictConfig, key: str, minimum: int = 1) -> int:
    """An odd integer key >= ``minimum`` (a window or box centred on a cell)."""
    value = require_int(cfg, key, minimum)
    if value % 2 == 0:
        raise ConfigError(key, f"must be odd: a window centred on its cell (got {value})")
    return value


def int_value(key: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value``, read from config key ``key``, as an integer (``2.5``, ``"2"`` and ``true`` are refused, never
    truncated), optionally in minimum..maximum; else a one-line ConfigError naming ``key``. For values taken out of
    a config section (dicts, merged per-collection settings) where :func:`require_int` has no dotted key to read."""
    bounds = (
        f" in {minimum}..{maximum}"
        if minimum is not None and maximum is not None
        else f" >= {minimum}"
        if minimum is not None
        else f" <= {maximum}"
        if maximum is not None
        else ""
    )
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        raise ConfigError(key, f"must be an integer{bounds} (got {value!r})")
    return value


def is_number(value: Any) -> bool:
    """A finite int or float config value (``true`` and ``"1e-5"`` are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def bool_value(key: str, value: Any) -> bool:
    """``value`` of config key ``key`` as a boolean (``true``/``false`` only: the string ``"false"`` is refused)."""
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false (got {value!r})")
    return value


def require_name(cfg: DictConfig, key: str) -> str:
    """A plain name (letters, digits, ``_ . -``; no path separators): it becomes a file or folder name."""
    return require(
        cfg,
        key,
        lambda v: isinstance(v, str) and PLAIN_NAME.match(v) is not None and v not in (".", ".."),
        "must be a plain name (letters, digits, _ . -; no / or ..)",
    )


_MISSING = object()


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten a nested dict to dotted keys (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
