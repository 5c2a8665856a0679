"""A figure of scored scenes: NO2 input / true relative emission / prediction with the marked region."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import save_figure


def panel_png(examples: dict, path: str | Path, threshold: float) -> None:
    """Rows = scenes; columns = NO2 input (NaN = cloud gap), true relative emission, predicted emission."""
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
