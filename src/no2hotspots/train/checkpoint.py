"""Training checkpoints: everything needed to continue a run exactly where the last finished epoch left it.

A checkpoint holds model, optimizer and scheduler state, the torch RNG state, the epoch, the best validation loss and
the per-epoch history. It is written atomically (temp file + rename) and read back with ``weights_only=True``
(no pickled code is executed).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..atomic import atomic_path
from ..errors import InputFileError

LAST = "last.pt"
BEST = "best.pt"


def save(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is the user's file problem
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputFileError(path, f"not a readable checkpoint ({first})") from None


def load_state_dict_checked(model: torch.nn.Module, state_dict: dict, source: str | Path) -> None:
    """Load ``state_dict`` into ``model``; a shape/key mismatch becomes one line naming ``source`` and the key."""
    from ..errors import UserError
    from ..model.net import check_state_dict

    try:
        check_state_dict(model, state_dict)
    except UserError as e:
        raise InputFileError(source, str(e)) from None
    model.load_state_dict(state_dict)
