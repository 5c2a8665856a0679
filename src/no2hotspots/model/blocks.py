"""Building blocks of the hotspot CNN, in the manner of torchvision's ``resnet.py``: small modules with explicit
input/output channels, so the parameter count of a network is a visible consequence of its config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a batch norm follows)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=bias)


class SpatialAttention(nn.Module):
    """CBAM-style spatial attention: ``x * sigmoid(conv([mean_c(x), max_c(x)]))``.

    The attention map (N,1,H,W) is computed from the channel-wise mean and max of the features, passed through one
    ``kernel_size`` x ``kernel_size`` convolution (2 -> 1 channels) and a sigmoid, and multiplied onto every channel.
    To look at the map, register a forward hook on ``attention_map`` or call it directly.
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("attention kernel_size must be odd")
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=True)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)


class _Stem(nn.Module):
    """The full-resolution first stage: brings (N, in, T, T) to (N, width, T/factor, T/factor) with one conv3x3 ->
    BN -> ReLU; subclasses choose what comes before the conv (``pre``) and its stride. ``out_channels`` and
    ``factor`` tell the network what follows."""

    def __init__(self, pre: nn.Module, conv: nn.Conv2d, width: int, factor: int):
        super().__init__()
        self.pre, self.conv = pre, conv
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels, self.factor = width, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(self.pre(x))))


class UnshuffleStem(_Stem):
    """Space-to-depth by ``factor`` (every f x f block becomes f*f channels: nothing is lost), then the conv at the
    reduced resolution: nothing but the attention map runs at full resolution."""

    def __init__(self, in_channels: int, width: int, factor: int = 4):
        pre = nn.PixelUnshuffle(factor) if factor > 1 else nn.Identity()
        super().__init__(pre, conv3x3(in_channels * factor * factor, width), width, factor)


class StridedConvStem(_Stem):
    """A conv3x3 with stride ``factor``."""

    def __init__(self, in_channels: int, width: int, factor: int = 2):
        super().__init__(nn.Identity(), conv3x3(in_channels, width, stride=factor), width, factor)


class ConvStem(_Stem):
    """A conv3x3 at full resolution (the naive design: most FLOPs at 64x64; slow on a CPU)."""

    def __init__(self, in_channels: int, width: int, factor: int = 1):
        if factor != 1:
            raise ValueError("ConvStem works at full resolution: factor must be 1")
        super().__init__(nn.Identity(), conv3x3(in_channels, width), width, 1)


class ResidualBlock(nn.Module):
    """torchvision's BasicBlock: conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU. The shortcut is the identity, or a
    1x1 conv + BN when the number of channels changes."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = (
            nn.Sequential(conv1x1(in_ch, out_ch), nn.BatchNorm2d(out_ch)) if in_ch != out_ch else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Stage(nn.Module):
    """``n_blocks`` residual blocks at one resolution, then (optionally) 2x2 max pooling.

    ``forward`` returns ``(pooled, unpooled)`` so a decoder head can take a skip connection at full stage resolution.
    """

    def __init__(self, in_ch: int, out_ch: int, n_blocks: int, pool: bool):
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualBlock(in_ch if i == 0 else out_ch, out_ch) for i in range(n_blocks)])
        self.pool: nn.Module = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.blocks(x)
        return self.pool(y), y


class FCHead(nn.Module):
    """The paper's head: flatten -> dropout -> fully connected -> sigmoid -> (N, tile, tile).

    Heads share one keyword interface (``deep_ch``, ``deep_res``, ``skip_ch``, ``up``, ``tile``, ``dropout``) so the
    network builds whichever one the config names, and one call (deepest features, first stage's features, the
    network's input); this one uses the deepest features only.
    """

    def __init__(self, *, deep_ch: int, deep_res: int, tile: int, dropout: float, bias_init: float = -2.0, **_):
        super().__init__()
        self.tile = tile
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(deep_ch * deep_res * deep_res, tile * tile)
        nn.init.constant_(self.fc.bias, bias_init)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, inputs: torch.Tensor | None = None
    ) -> torch.Tensor:
        z = self.fc(self.dropout(torch.flatten(x, 1)))
        return torch.sigmoid(z).view(-1, self.tile, self.tile)


class ShuffleHead(nn.Module):
    """A light decoder that keeps spatial resolution (not in the paper).

    The deepest features are upsampled (bilinear) to the resolution of the first stage, concatenated with that
    stage's (unpooled) output as a skip connection, mixed by conv3x3-BN-ReLU, then dropout and a 1x1 conv give
    ``up*up`` channels that a pixel shuffle turns into the full-resolution (N, tile, tile) map, through a sigmoid.
    Translation-equivariant, so it learns "where" from every scene instead of per output pixel as an FC layer must.
    Fully convolutional: it maps any input whose sides are multiples of the network's alignment (stem factor x
    2^pools) to a map of the same size, which detection's ``tiling: context`` uses.

    ``refine_width`` > 0 adds a full-resolution residual refinement of the logits: three conv3x3 (``refine_width``,
    ``refine_width``, 1 channels, ReLU between) over [logits, the network's input], added to the logits before the
    sigmoid. Without it each stem-factor block of output pixels is a linear map of one low-resolution feature
    vector; with it the map can draw a dip between sources a few pixels apart from the input itself. Its last conv
    starts at zero, so an untrained refinement is the identity.
    """

    fully_convolutional = True

    def __init__(
        self,
        *,
        deep_ch: int,
        skip_ch: int,
        up: int,
        tile: int,
        dropout: float,
        width: int = 32,
        bias_init: float = -2.0,
        refine_width: int = 0,
        in_channels: int = 2,
        **_,
    ):
        super().__init__()
        self.tile, self.up = tile, up
        self.refine: nn.Sequential | None = None
        if refine_width:
            self.refine = nn.Sequential(
                nn.Conv2d(1 + in_channels, refine_width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(refine_width, refine_width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(refine_width, 1, 3, padding=1),
            )
        self.mix = conv3x3(deep_ch + skip_ch, width)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.out = conv1x1(width, up * up, bias=True)
        self.shuffle = nn.PixelShuffle(up) if up > 1 else nn.Identity()
        nn.init.constant_(self.out.bias, bias_init)

    def zero_refinement(self) -> None:
        """Start the refinement as the identity (its last conv at zero); the network calls this after its init."""
        if self.refine is not None:
            nn.init.zeros_(self.refine[-1].weight)
            nn.init.zeros_(self.refine[-1].bias)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, inputs: torch.Tensor | None = None
    ) -> torch.Tensor:
        if skip is None:
            raise ValueError("ShuffleHead needs the first stage's features as skip")
        if x.shape[-1] != skip.shape[-1]:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        z = self.relu(self.bn(self.mix(torch.cat([x, skip], dim=1))))
        z = self.shuffle(self.out(self.dropout(z)))
        if self.refine is not None:
            if inputs is None:
                raise ValueError("ShuffleHead with refine_width needs the network's input")
            z = z + self.refine(torch.cat([z, inputs], dim=1))
        return torch.sigmoid(z)[:, 0]  # (N, H, W): H = W = tile in training; any multiple of the alignment works
