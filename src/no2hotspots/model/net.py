"""The hotspot CNN and its builder from ``conf/model/*.yaml``.

Architecture (``HotspotNet``): input (N, in_channels, tile, tile) -> spatial attention -> stem (the only part at
full resolution: space-to-depth or a strided conv) -> stages of residual blocks with max pooling -> head ->
(N, tile, tile) relative emission in [0, 1] (sigmoid).

Heads: ``fc`` is the paper's flatten -> dropout -> fully connected (most parameters sit in that layer);
``shuffle`` is a light decoder with a skip connection and a pixel shuffle (see ``blocks.ShuffleHead``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, UserError
from .blocks import FCHead, ResidualBlock, ShuffleHead, SpatialAttention, Stage, Stem  # noqa: F401

HEADS = ("fc", "shuffle")
STEMS = ("unshuffle", "strided_conv", "conv")


class HotspotNet(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int = 2,
        tile_size: int = 64,
        attention_kernel: int = 7,
        stem_kind: str = "unshuffle",
        stem_factor: int = 2,
        stem_width: int = 32,
        widths: tuple[int, ...] = (32, 64),
        blocks: tuple[int, ...] = (1, 1),
        pool: tuple[bool, ...] = (True, True),
        head_kind: str = "fc",
        head_width: int = 32,
        dropout: float = 0.05,
        bias_init: float = -2.0,
    ):
        super().__init__()
        self.tile_size = tile_size
        self.attention = SpatialAttention(attention_kernel)
        self.stem = Stem(in_channels, stem_width, stem_kind, stem_factor)
        stages, in_ch, res = [], stem_width, tile_size // stem_factor
        for w, n, p in zip(widths, blocks, pool):
            stages.append(Stage(in_ch, w, n, p))
            in_ch, res = w, (res // 2 if p else res)
        self.stages = nn.ModuleList(stages)
        if head_kind == "fc":
            self.head: nn.Module = FCHead(in_ch * res * res, tile_size, dropout, bias_init)
        elif head_kind == "shuffle":
            self.head = ShuffleHead(in_ch, widths[0], head_width, stem_factor, tile_size, dropout, bias_init)
        else:
            raise ValueError(f"unknown head {head_kind!r}")
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not getattr(self.head, "out", None):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # zero-init the last BN of each residual branch (torchvision's zero_init_residual): blocks start as identity
        for m in self.modules():
            if isinstance(m, ResidualBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.attention(x))
        skip = None
        for i, stage in enumerate(self.stages):
            x, unpooled = stage(x)
            if i == 0:
                skip = unpooled
        return self.head(x, skip)


def _get(cfg: Mapping, key: str, default: Any = None, prefix: str = "model") -> Any:
    cur: Any = cfg
    for part in key.split("."):
        if cur is None or part not in cur:
            if default is not None:
                return default
            raise ConfigError(f"{prefix}.{key}", "missing")
        cur = cur[part]
    return cur


def _int(cfg, key, lo=1, default=None) -> int:
    v = _get(cfg, key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"model.{key}", f"must be an integer >= {lo} (got {v!r})")
    return v


def _list(cfg, key, n=None) -> list:
    v = _get(cfg, key)
    try:
        v = list(v)
    except TypeError:
        raise ConfigError(f"model.{key}", f"must be a list (got {v!r})") from None
    if not v or (n is not None and len(v) != n):
        raise ConfigError(f"model.{key}", f"must be a list of {n or '>= 1'} entries (got {v!r})")
    return v


def model_kwargs(model_cfg: Mapping) -> dict:
    """Validate ``model_cfg`` (the ``model`` config group) and turn it into ``HotspotNet`` keyword arguments."""
    tile = _int(model_cfg, "tile_size", 8, default=64)
    in_ch = _int(model_cfg, "in_channels")
    k = _int(model_cfg, "attention.kernel_size")
    if k % 2 != 1:
        raise ConfigError("model.attention.kernel_size", f"must be odd (got {k})")
    stem_kind = _get(model_cfg, "stem.kind")
    if stem_kind not in STEMS:
        raise ConfigError("model.stem.kind", f"must be one of {', '.join(STEMS)} (got {stem_kind!r})")
    factor = _int(model_cfg, "stem.factor")
    if tile % factor:
        raise ConfigError("model.stem.factor", f"must divide tile_size {tile} (got {factor})")
    widths = [int(w) for w in _list(model_cfg, "stages.widths")]
    if any(w < 1 for w in widths):
        raise ConfigError("model.stages.widths", f"must be positive integers (got {widths})")
    blocks = [int(b) for b in _list(model_cfg, "stages.blocks", len(widths))]
    if any(b < 1 for b in blocks):
        raise ConfigError("model.stages.blocks", f"must be integers >= 1 (got {blocks})")
    pool = [bool(p) for p in _list(model_cfg, "stages.pool", len(widths))]
    res = tile // factor
    for p in pool:
        if p:
            if res % 2:
                raise ConfigError("model.stages.pool", f"pooling an odd feature map of {res} px (tile/stem/pools)")
            res //= 2
    head_kind = _get(model_cfg, "head.kind")
    if head_kind not in HEADS:
        raise ConfigError("model.head.kind", f"must be one of {', '.join(HEADS)} (got {head_kind!r})")
    dropout = float(_get(model_cfg, "dropout"))
    if not 0.0 <= dropout < 1.0:
        raise ConfigError("model.dropout", f"must be in [0, 1) (got {dropout})")
    return dict(
        in_channels=in_ch,
        tile_size=tile,
        attention_kernel=k,
        stem_kind=stem_kind,
        stem_factor=factor,
        stem_width=_int(model_cfg, "stem.width"),
        widths=tuple(widths),
        blocks=tuple(blocks),
        pool=tuple(pool),
        head_kind=head_kind,
        head_width=_int(model_cfg, "head.width", default=32),
        dropout=dropout,
        bias_init=float(_get(model_cfg, "head.bias_init", -2.0)),
    )


def build_model(model_cfg: Mapping) -> nn.Module:
    """Build the network described by the ``model`` config group (``conf/model/*.yaml``); output (N, tile, tile).

    Raises ``ConfigError`` (one line naming the key) for invalid values.
    """
    return HotspotNet(**model_kwargs(model_cfg))


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
