"""Tiling, batched inference and seamless stitching of a gridded field.

The model sees 64x64 tiles; a detection grid is larger (or smaller). Each time step of the grid is cut into tiles
whose origins are ``0, stride, 2*stride, ...`` plus one last tile flush with the far edge, so every cell is covered
without padding when the grid is at least one tile wide. A grid dimension smaller than a tile is padded at its far
end; padded cells are invalid input (NaN, mask 0) exactly like cloud gaps, and are cropped from the result.

Predictions of overlapping tiles are blended with a smooth 2-D window (the outer product of a Hann window lifted by
``window_floor`` so tile borders still count), and normalised by the summed weights. A cell covered by one tile gets
exactly that tile's value; a constant prediction stitches to the same constant; a prediction that only depends on
the cell itself stitches back to it exactly, i.e. the blending adds no seams.

Orientation: tiles are fed in the grid's array order, row 0 = the southernmost latitude (grids have ascending lat),
column 0 = the westernmost longitude. Compared with the usual image convention (north up) every tile is mirrored
north-south. The training scenes have random wind directions and a Gaussian plume is symmetric about its axis, so
a mirrored plume is just a plume with a mirrored wind direction; what matters is that every tile is fed the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
from tqdm.auto import tqdm

from ..errors import UserError
from ..logs import progress_disabled

#: ``predict(no2 (N,T,T) float32 with NaN where invalid, valid (N,T,T) bool) -> (N,T,T) relative emission``
Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


#: detect.tiling's values; ``auto`` is resolved per model by :func:`resolve_tiling`
TILINGS = ("auto", "blend", "context")


def resolve_tiling(tiling: str, net) -> str:
    """The tiling a model runs with: ``auto`` is ``context`` (one fully convolutional pass, no stride or offset to
    depend on) for a fully convolutional model (ShuffleHead, ``model=demo``) and ``blend`` (the paper's tiles) for
    one whose head needs whole 64x64 tiles (FCHead, ``model=paper``); ``blend`` and ``context`` are kept as given."""
    if tiling not in TILINGS:
        raise UserError(f"detect.tiling: must be {', '.join(TILINGS)} (got {tiling!r})")
    if tiling != "auto":
        return tiling
    return "context" if getattr(net, "fully_convolutional", False) else "blend"


def tile_starts(n: int, tile: int, stride: int) -> list[int]:
    """Tile origins along one axis of length ``n``: every ``stride``, plus one tile flush with the end."""
    if tile < 1 or stride < 1:
        raise ValueError("tile and stride must be >= 1")
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile + 1, stride))
    if starts[-1] != n - tile:
        starts.append(n - tile)
    return starts


def blend_window(tile: int, floor: float) -> np.ndarray:
    """2-D blending weights: outer product of ``floor + (1 - floor) * hann``; strictly positive everywhere."""
    if not 0.0 < floor <= 1.0:
        raise ValueError("window floor must be in (0, 1]")
    w1 = floor + (1.0 - floor) * np.hanning(tile)
    return np.outer(w1, w1).astype(np.float32)


def count_tiles(shape: tuple[int, int], tile: int, stride: int) -> int:
    return len(tile_starts(shape[0], tile, stride)) * len(tile_starts(shape[1], tile, stride))


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the batches over ``n`` tiles: full batches of ``batch_size``, then the rest in descending
    powers of two (e.g. 64, 64, 32, 4, 1 for 165 tiles), so only ~log2(batch_size) batch shapes ever reach the model.
    oneDNN keeps compiled kernels per input shape (its primitive cache): fed every remainder 1..63, a detect worker
    grew by ~290 MB (measured: +288 MB for batch sizes 1..64 against +12 MB for repeated full batches)."""
    bounds, b0 = [], 0
    while n - b0 >= batch_size:
        bounds.append((b0, b0 + batch_size))
        b0 += batch_size
    rest = n - b0
    while rest:
        size = 1 << (rest.bit_length() - 1)
        bounds.append((b0, b0 + size))
        b0, rest = b0 + size, rest - size
    return bounds


def _time_fields(no2, valid) -> tuple[np.ndarray, np.ndarray, bool]:
    """``no2`` (float32) and ``valid`` (bool) as ``(time, ny, nx)``, and whether they came as one ``(ny, nx)`` field."""
    no2 = np.asarray(no2, dtype=np.float32)
    valid = np.asarray(valid, dtype=bool)
    squeeze = no2.ndim == 2
    if squeeze:
        no2, valid = no2[None], valid[None]
    if no2.shape != valid.shape or no2.ndim != 3:
        raise ValueError(f"no2 {no2.shape} and valid {valid.shape} must both be (time, lat, lon)")
    return no2, valid, squeeze


def _window_jobs(validp: np.ndarray, rows, cols, win: int) -> tuple[list, dict]:
    """The ``(t, row, col)`` windows of ``win`` x ``win`` cells that hold a valid cell, and the counts of run and
    skipped windows (``tiles_*``)."""
    todo = [(t, r, c) for t in range(validp.shape[0]) for r in rows for c in cols]
    jobs = [(t, r, c) for (t, r, c) in todo if validp[t, r : r + win, c : c + win].any()]
    return jobs, {"tiles_total": len(todo), "tiles_run": len(jobs), "tiles_skipped_empty": len(todo) - len(jobs)}


def _predict_windows(no2p, validp, jobs, win: int, predict: Predictor, batch_size: int, desc: str, unit: str):
    """``((t, row, col), output)`` for every window of ``jobs``, predicted in :func:`batch_bounds` batches."""
    with tqdm(total=len(jobs), desc=desc, unit=unit, disable=progress_disabled(), leave=False) as bar:
        for b0, b1 in batch_bounds(len(jobs), batch_size):
            batch = jobs[b0:b1]
            x = np.stack([no2p[t, r : r + win, c : c + win] for t, r, c in batch])
            m = np.stack([validp[t, r : r + win, c : c + win] for t, r, c in batch])
            y = np.asarray(predict(x, m), dtype=np.float32).reshape(len(batch), win, win)
            yield from zip(batch, y)
            bar.update(len(batch))


def stitch(
    no2: np.ndarray,
    valid: np.ndarray,
    predict: Predictor,
    *,
    tile: int = 64,
    stride: int = 32,
    batch_size: int = 64,
    window_floor: float = 0.1,
    desc: str = "detect",
) -> tuple[np.ndarray, dict]:
    """Run ``predict`` over overlapping tiles of every time step and blend the results.

    ``no2`` and ``valid`` are ``(time, ny, nx)`` (or ``(ny, nx)``). Cells outside ``valid`` are passed as NaN.
    Tiles without a single valid cell are not run; cells covered only by such tiles are NaN in the result.
    Returns the stitched ``(time, ny, nx)`` float32 map and a small dict of counts (tiles run / skipped).
    """
    no2, valid, squeeze = _time_fields(no2, valid)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    ny, nx = no2.shape[1:]
    valid = valid & np.isfinite(no2)
    # pad to at least one tile (padding = invalid input)
    py, px = max(tile - ny, 0), max(tile - nx, 0)
    no2p = np.pad(np.where(valid, no2, np.nan), ((0, 0), (0, py), (0, px)), constant_values=np.nan)
    validp = np.pad(valid, ((0, 0), (0, py), (0, px)), constant_values=False)
    rows, cols = tile_starts(ny, tile, stride), tile_starts(nx, tile, stride)
    window = blend_window(tile, window_floor)

    acc = np.zeros(validp.shape, dtype=np.float32)  # float32: ~7 digits are plenty for a 0..1 map
    wsum = np.zeros(validp.shape, dtype=np.float32)
    jobs, counts = _window_jobs(validp, rows, cols, tile)
    for (t, r, c), yi in _predict_windows(no2p, validp, jobs, tile, predict, batch_size, desc, "tile"):
        acc[t, r : r + tile, c : c + tile] += window * yi
        wsum[t, r : r + tile, c : c + tile] += window

    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(wsum > 0, acc / wsum, np.nan)[:, :ny, :nx].astype(np.float32)
    return (out[0] if squeeze else out), counts


def context_stitch(
    no2: np.ndarray,
    valid: np.ndarray,
    predict: Predictor,
    *,
    core: int = 128,
    margin: int = 48,
    alignment: int = 8,
    batch_size: int = 16,
    desc: str = "detect",
) -> tuple[np.ndarray, dict]:
    """The whole field through a fully convolutional model, window by window, without seams or blending.

    The grid is cut into ``core x core`` blocks at multiples of ``core``; each goes to the model with ``margin``
    cells of its surroundings on every side (outside the grid: invalid input, as under clouds) and only its core is
    kept. When ``margin`` covers the network's receptive field the result equals ONE pass over the whole field, so it
    does not depend on any tiling (there is no stride), and every cell sees its full surroundings instead of sitting
    near some tile's border. ``core`` and ``margin`` must be multiples of ``alignment`` (the network's stem factor x
    2 per pooling) so every window lines up with the grid's origin the same way. Windows whose input has no valid
    cell are not run (their cores are NaN). Same inputs and outputs as :func:`stitch`.
    """
    no2, valid, squeeze = _time_fields(no2, valid)
    for name, v in (("core", core), ("margin", margin)):
        if v < 0 or v % alignment or (name == "core" and v == 0):
            raise ValueError(f"{name} {v} must be a positive multiple of the model's alignment {alignment}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    nt, ny, nx = no2.shape
    valid = valid & np.isfinite(no2)
    rows, cols = range(0, ny, core), range(0, nx, core)
    py, px = len(rows) * core - ny, len(cols) * core - nx
    pad = ((0, 0), (margin, margin + py), (margin, margin + px))
    no2p = np.pad(np.where(valid, no2, np.nan), pad, constant_values=np.nan)
    validp = np.pad(valid, pad, constant_values=False)
    out = np.full((nt, ny + py, nx + px), np.nan, dtype=np.float32)
    win = core + 2 * margin
    jobs, counts = _window_jobs(validp, rows, cols, win)
    for (t, r, c), yi in _predict_windows(no2p, validp, jobs, win, predict, batch_size, desc, "window"):
        out[t, r : r + core, c : c + core] = yi[margin : margin + core, margin : margin + core]
    out = out[:, :ny, :nx]
    return (out[0] if squeeze else out), counts


def receptive_radius(net, *, size: int = 192, seed: int = 0) -> int:
    """How far (cells, Chebyshev) a change of one input cell moves ``net``'s output: an impulse on a random field of
    ``size`` x ``size``. Measured once per network (cached on it); ``size // 2`` means at least that far."""
    cached = getattr(net, "_receptive_radius", None)
    if cached is not None:
        return int(cached)
    import torch

    rng = np.random.default_rng(seed)
    x = torch.ones(1, 2, size, size)
    x[0, 0] = torch.as_tensor(rng.normal(1.0, 0.3, (size, size)), dtype=torch.float32)
    c = size // 2
    net = net.eval()
    x = x.to(next(net.parameters()).device)
    with torch.inference_mode():
        y0 = net(x)[0].float()
        x[0, 0, c, c] += 5.0
        d = (net(x)[0].float() - y0).abs().cpu().numpy()
    ii, jj = np.nonzero(d > 1e-7)
    radius = int(max(np.abs(ii - c).max(initial=0), np.abs(jj - c).max(initial=0)))
    net._receptive_radius = radius
    return radius


def model_predictor(net, input_scale: float, *, device: str = "cpu") -> Predictor:
    """A :data:`Predictor` running ``net`` on the training input (:func:`no2hotspots.model.inputs.prepare_input`).

    The input scaling and mask convention are therefore exactly the training ones. Runs under
    ``torch.inference_mode``; the output is clipped to the contract's range [0, 1]. On CUDA, TF32 is switched off
    while a batch runs (:func:`tf32_off`; PyTorch allows it for convolutions by default): the maps then match the
    CPU's to ~1e-6 instead of ~6e-4, so hotspots do not depend on the device (benchmarks/gpu.py, ``agreement``).
    The process's own TF32 settings (a training loop in the same process) are left as they were.
    """
    import torch

    from ..model.inputs import prepare_input

    dev = torch.device(resolve_device(device))
    net = net.to(dev).eval()

    def predict(no2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        x = prepare_input(no2, valid, input_scale, device=dev)
        with torch.inference_mode(), tf32_off(dev.type == "cuda"):
            y = net(x).float().reshape(no2.shape).clamp(0.0, 1.0)
            return y.cpu().numpy()

    return predict


@contextmanager
def tf32_off(enabled: bool = True):
    """TF32 off for cuDNN convolutions and CUDA matmuls inside the block (``enabled``), the settings before restored
    after it, also on an error."""
    if not enabled:
        yield
        return
    import torch

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else is passed to torch as is."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
