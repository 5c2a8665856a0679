"""The hotspot CNN and its builder from ``conf/model/*.yaml``.

Architecture (``HotspotNet``): input (N, in_channels, tile, tile) -> spatial attention -> stem (space-to-depth or a
strided conv) -> stages of residual blocks with max pooling -> head -> (N, tile, tile) relative emission in [0, 1]
(sigmoid). Only the attention, the stem and, where configured, the head's refinement work at full resolution.

Heads: ``FCHead`` is the paper's flatten -> dropout -> fully connected (most parameters sit in that layer);
``ShuffleHead`` a light decoder with a skip connection and a pixel shuffle, optionally refined at full resolution
from the input (``head.refine_width``). The config names the classes (``_target_``) and Hydra's ``instantiate``
builds them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from ..errors import ConfigError, UserError
from .blocks import ResidualBlock, SpatialAttention, Stage

#: what the ``_target_`` keys of a model config may name: a model.json from the registry is built from its config,
#: so only the project's own network classes are instantiated (never an arbitrary import path)
NETWORKS = ("no2hotspots.model.net.HotspotNet",)
STEMS = tuple(f"no2hotspots.model.blocks.{c}" for c in ("UnshuffleStem", "StridedConvStem", "ConvStem"))
HEADS = tuple(f"no2hotspots.model.blocks.{c}" for c in ("FCHead", "ShuffleHead"))
ATTENTIONS = ("no2hotspots.model.blocks.SpatialAttention",)


class HotspotNet(nn.Module):
    """Spatial attention -> stem -> stages of residual blocks -> head; (N, in, T, T) -> (N, T, T) in [0, 1].

    Built from ``conf/model/*.yaml`` by Hydra's ``instantiate``: ``attention`` is a module, ``stem`` and ``head``
    are partials (``_partial_: true``) completed here with the channel counts and resolutions that follow from the
    stages, in the manner of torchvision's ``ResNet(block, layers, norm_layer)``.
    """

    def __init__(
        self,
        *,
        stem: Callable[..., nn.Module],
        head: Callable[..., nn.Module],
        stages: Mapping,
        attention: nn.Module | None = None,
        in_channels: int = 2,
        tile_size: int = 64,
        dropout: float = 0.05,
        name: str | None = None,
    ):
        super().__init__()
        self.tile_size, self.name = tile_size, name
        self.attention = attention if attention is not None else SpatialAttention(7)
        self.stem = stem(in_channels=in_channels)
        widths, blocks, pool = list(stages["widths"]), list(stages["blocks"]), list(stages["pool"])
        modules, in_ch, res = [], self.stem.out_channels, tile_size // self.stem.factor
        for w, n, p in zip(widths, blocks, pool):
            modules.append(Stage(in_ch, int(w), int(n), bool(p)))
            in_ch, res = int(w), (res // 2 if p else res)
        self.stages = nn.ModuleList(modules)
        #: input sides must be multiples of this for the map to line up with the input (stem x 2 per pooling)
        self.alignment = self.stem.factor * 2 ** sum(bool(p) for p in pool)
        self.head = head(
            deep_ch=in_ch,
            deep_res=res,
            skip_ch=int(widths[0]),
            up=self.stem.factor,
            tile=tile_size,
            dropout=dropout,
            in_channels=in_channels,
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not getattr(self.head, "out", None):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # zero-init the last BN of each residual branch (torchvision's zero_init_residual): blocks start as identity
        for m in self.modules():
            if isinstance(m, ResidualBlock):
                nn.init.zeros_(m.bn2.weight)
        if hasattr(self.head, "zero_refinement"):
            self.head.zero_refinement()

    @property
    def fully_convolutional(self) -> bool:
        """True when the network maps inputs of any (aligned) size, not only tile x tile (the head decides)."""
        return bool(getattr(self.head, "fully_convolutional", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = x
        x = self.stem(self.attention(x))
        skip = None
        for i, stage in enumerate(self.stages):
            x, unpooled = stage(x)
            if i == 0:
                skip = unpooled
        return self.head(x, skip, inputs)


def _int(value, key: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f"model.{key}", f"must be an integer >= {lo} (got {value!r})")
    return value


def _list(cfg: Mapping, key: str, n: int | None = None) -> list:
    v = cfg.get(key) if cfg is not None else None
    if v is None or isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
        raise ConfigError(f"model.stages.{key}", f"must be a list (got {v!r})")
    v = list(v)
    if not v or (n is not None and len(v) != n):
        raise ConfigError(f"model.stages.{key}", f"must be a list of {n or '>= 1'} entries (got {v!r})")
    return v


def _target(cfg: Mapping, key: str, allowed: tuple[str, ...]) -> str:
    node = cfg.get(key) if key else cfg
    target = node.get("_target_") if isinstance(node, Mapping) else None
    if target not in allowed:
        where = f"model.{key}._target_" if key else "model._target_"
        names = ", ".join(a.rsplit(".", 1)[-1] for a in allowed)
        raise ConfigError(where, f"must name one of {names} (got {target!r})")
    return target


def check_model_config(model_cfg: Mapping) -> None:
    """Raise a one-line ``ConfigError`` naming the first invalid ``model.*`` key (before anything is built)."""
    _target(model_cfg, "", NETWORKS)
    _target(model_cfg, "stem", STEMS)
    _target(model_cfg, "head", HEADS)
    if model_cfg.get("attention") is not None:
        _target(model_cfg, "attention", ATTENTIONS)
        k = _int(model_cfg["attention"].get("kernel_size", 7), "attention.kernel_size")
        if k % 2 != 1:
            raise ConfigError("model.attention.kernel_size", f"must be odd (got {k})")
    tile = _int(model_cfg.get("tile_size", 64), "tile_size", 8)
    _int(model_cfg.get("in_channels", 2), "in_channels")
    stem = model_cfg["stem"]
    factor = _int(stem.get("factor", 1), "stem.factor")
    _int(stem.get("width"), "stem.width")
    if tile % factor:
        raise ConfigError("model.stem.factor", f"must divide tile_size {tile} (got {factor})")
    if stem["_target_"].endswith("ConvStem") and not stem["_target_"].endswith("StridedConvStem") and factor != 1:
        raise ConfigError("model.stem.factor", f"ConvStem works at full resolution: must be 1 (got {factor})")
    st = model_cfg.get("stages")
    widths = [_int(w, "stages.widths") for w in _list(st, "widths")]
    for k in ("blocks", "pool"):
        _list(st, k, len(widths))
    for b in st["blocks"]:
        _int(b, "stages.blocks")
    res = tile // factor
    for p in st["pool"]:
        if p:
            if res % 2:
                raise ConfigError("model.stages.pool", f"pooling an odd feature map of {res} px (tile/stem/pools)")
            res //= 2
    head = model_cfg["head"]
    refine = _int(head.get("refine_width", 0), "head.refine_width", 0)
    if refine and not head["_target_"].endswith("ShuffleHead"):
        raise ConfigError("model.head.refine_width", f"only ShuffleHead has a refinement (got {refine})")
    dropout = model_cfg.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError("model.dropout", f"must be in [0, 1) (got {dropout!r})")


def build_model(model_cfg: Mapping) -> nn.Module:
    """Build the network described by the ``model`` config group (``conf/model/*.yaml``) with Hydra's
    ``instantiate``; output (N, tile, tile). Raises ``ConfigError`` (one line naming the key) for invalid values;
    only the project's own classes may be named (see :data:`NETWORKS`, :data:`STEMS`, :data:`HEADS`)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(legacy_model_config(_plain(model_cfg)))
    check_model_config(OmegaConf.to_container(cfg, resolve=True))
    return instantiate(cfg)


def _plain(model_cfg) -> dict:
    from omegaconf import OmegaConf

    if OmegaConf.is_config(model_cfg):
        return OmegaConf.to_container(model_cfg, resolve=True)
    return dict(model_cfg)


def legacy_model_config(cfg: dict) -> dict:
    """A model config written before ``_target_`` instantiation (``stem.kind``, ``head.kind``, as stored in the
    model.json of models registered by earlier versions) in today's form; today's configs pass unchanged."""
    if "_target_" in cfg:
        return cfg
    stems = {"unshuffle": "UnshuffleStem", "strided_conv": "StridedConvStem", "conv": "ConvStem"}
    heads = {"fc": "FCHead", "shuffle": "ShuffleHead"}
    stem, head = dict(cfg.get("stem") or {}), dict(cfg.get("head") or {})
    kind, hkind = stem.pop("kind", None), head.pop("kind", None)
    if kind not in stems or hkind not in heads:
        raise ConfigError("model.stem.kind" if kind not in stems else "model.head.kind", "unknown kind in old config")
    b = "no2hotspots.model.blocks."
    out = {k: v for k, v in cfg.items() if k not in ("stem", "head", "attention")}
    out["_target_"] = NETWORKS[0]
    out["attention"] = {"_target_": b + "SpatialAttention", **(cfg.get("attention") or {})}
    out["stem"] = {"_target_": b + stems[kind], "_partial_": True, **stem}
    if hkind == "fc":
        head.pop("width", None)
    out["head"] = {"_target_": b + heads[hkind], "_partial_": True, **head}
    return out


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise a one-line ``UserError`` unless ``state_dict`` fits ``model`` exactly (same keys, same shapes).

    Names the first parameter whose shape differs (expected vs got), or the first missing/unexpected key.
    """
    own = model.state_dict()
    for name, tensor in own.items():
        if name not in state_dict:
            raise UserError(
                f"checkpoint does not fit the model: parameter {name!r} missing from the checkpoint "
                "(built for another model config?)"
            )
        got = tuple(state_dict[name].shape)
        if tuple(tensor.shape) != got:
            raise UserError(
                f"checkpoint does not fit the model: parameter {name!r} has shape {got}, expected "
                f"{tuple(tensor.shape)} (checkpoint built for another model config?)"
            )
    extra = [k for k in state_dict if k not in own]
    if extra:
        raise UserError(
            f"checkpoint does not fit the model: unexpected parameter {extra[0]!r} "
            f"({len(extra)} unexpected; built for another model config?)"
        )
