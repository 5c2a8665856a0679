"""Figures of a training run: the learning curve."""

from __future__ import annotations

from pathlib import Path

from ..atomic import save_figure


def learning_curve_png(history: list[dict], path: str | Path) -> None:
    """Left: the MSE on the training and validation splits (comparable) and the full training loss (MSE + the
    Tversky term, when used); right: monitored validation scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] + 1 for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.plot(ep, [h["train_mse"] for h in history], "o-", label="train MSE")
    a1.plot(ep, [h["val_loss"] for h in history], "o-", label="validation MSE")
    if any(abs(h["train_loss"] - h["train_mse"]) > 1e-12 for h in history):
        a1.plot(ep, [h["train_loss"] for h in history], "--", color="grey", label="train loss (MSE + Tversky)")
    a1.set_yscale("log")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend(fontsize=8)
    for key, label in (
        ("val/mark/every/pixel_recall_q2_all", "median pixel recall (Table 1, every source)"),
        ("val/mark/every/pixel_precision_q2_all", "median pixel precision"),
        ("val/detect/every/source_f1", "source F1 at the detection threshold"),
    ):
        if key in history[0]:
            a2.plot(ep, [h[key] for h in history], "o-", label=label)
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation score")
    a2.set_ylim(0, 1.02)
    a2.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
