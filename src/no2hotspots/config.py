"""Configuration: the Hydra tree in ``conf/`` is the single source of truth.

``params.yaml`` (what DVC stages read and track) is the Hydra composition of ``conf/config.yaml`` with no
overrides; ``make params`` writes it and a test fails if it drifts. ``dvc exp run -S key=value`` composes it anew
with the override (DVC's Hydra integration, enabled in ``.dvc/config``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError, InputFileError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"


def compose(overrides: Iterable[str] = (), config_dir: str | os.PathLike = CONF_DIR) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (the same composition DVC does for params.yaml)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


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
    """Load params.yaml (as written by DVC/Hydra composition) and apply ``key=value`` dotlist overrides."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "not found; run `make params` (or `dvc exp run`) to compose it from conf/")
    cfg = OmegaConf.load(path)
    overrides = list(overrides)
    if overrides:
        for o in overrides:
            if "=" not in o:
                raise ConfigError(o, "override must look like key=value")
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    return cfg


def require(cfg: DictConfig, key: str, check: Callable[[Any], bool], problem: str) -> Any:
    """Return ``cfg[key]`` (dotted) if ``check(value)`` holds, else raise a one-line ConfigError naming the key."""
    value = OmegaConf.select(cfg, key, default=_MISSING)
    if value is _MISSING:
        raise ConfigError(key, "missing")
    try:
        ok = bool(check(value))
    except Exception:  # noqa: BLE001 - a check that cannot even run means the value has the wrong type
        ok = False
    if not ok:
        raise ConfigError(key, f"{problem} (got {value!r})")
    return value


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
