"""Figures of a training run: the learning curve and a panel of NO2 input / true emission / prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import save_figure


def learning_curve_png(history: list[dict], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a1.plot(ep, [h["val_loss"] for h in history], "o-", label="validation")
    a1.set_yscale("log")
    a1.set_xlabel("epoch")
    a1.set_ylabel("MSE loss")
    a1.legend()
    for key, label in (
        ("val_acc_q2_all", "median accuracy"),
        ("val_precision_q2_all", "median precision"),
        ("val_source_f1", "source F1"),
    ):
        if key in history[0]:
            a2.plot(ep, [h[key] for h in history], "o-", label=label)
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation metric")
    a2.set_ylim(0, 1.02)
    a2.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def panel_png(examples: dict, path: str | Path, threshold: float) -> None:
    """Rows = test scenes; columns = NO2 input (NaN = cloud gap), true relative emission, predicted emission."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(examples["no2"])
    fig, axes = plt.subplots(n, 3, figsize=(8.4, 2.6 * n), squeeze=False)
    for i in range(n):
        no2 = np.where(examples["valid"][i] > 0, examples["no2"][i], np.nan) * 1e6
        a = axes[i]
        im = a[0].imshow(no2, origin="lower", cmap="viridis")
        fig.colorbar(im, ax=a[0], fraction=0.046, label="NO2 [µmol m-2]")
        im = a[1].imshow(examples["emission"][i], origin="lower", cmap="magma", vmin=0, vmax=1)
        fig.colorbar(im, ax=a[1], fraction=0.046)
        im = a[2].imshow(examples["pred"][i], origin="lower", cmap="magma", vmin=0, vmax=1)
        a[2].contour(examples["pred"][i] > threshold, levels=[0.5], colors="cyan", linewidths=0.6)
        fig.colorbar(im, ax=a[2], fraction=0.046)
        for j, t in enumerate(("NO2 input", "true rel. emission", "predicted")):
            a[j].set_xticks([])
            a[j].set_yticks([])
            if i == 0:
                a[j].set_title(t)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
