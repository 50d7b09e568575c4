"""The pictures of scripts/report.py: confusion among the most confused classes, the worst errors, training curves."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from sketch_data.atomic import atomic_write  # noqa: E402
from sketch_data.images import to_rgb  # noqa: E402

# Long ImageNet names would push the matrix off the figure; 22 characters keep a 20-class matrix square.
NAME_CHARS = 22
THUMBNAIL = (160, 160)


def short(name: str, chars: int = NAME_CHARS) -> str:
    return name if len(name) <= chars else name[: chars - 1] + "…"


def plot_confusion_top(matrix: np.ndarray, classes: list[int], names: list[str], path: Path) -> Path:
    """The confusion matrix restricted to `classes`; mistakes in colour, the correct diagonal in grey."""
    sub = matrix[np.ix_(classes, classes)]
    mistakes = np.ma.masked_array(sub, mask=np.eye(len(classes), dtype=bool))
    side = max(6.0, 0.42 * len(classes) + 3.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    cmap = plt.get_cmap("Reds").with_extremes(bad="#e8e8e8")  # bad = the masked diagonal
    image = ax.imshow(mistakes, cmap=cmap, vmin=0, vmax=max(1, mistakes.max()))
    for (row, col), count in np.ndenumerate(sub):
        if count:
            dark = row != col and count > 0.6 * mistakes.max()
            ax.text(col, row, str(count), ha="center", va="center", fontsize=8,
                    color="white" if dark else "#555555" if row == col else "black")
    labels = [short(names[c]) for c in classes]
    ax.set_xticks(range(len(classes)), labels, rotation=60, ha="right", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(range(len(classes)), labels, fontsize=9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"The {len(classes)} most confused classes (counts; grey diagonal = correct)")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="images predicted as the column's class")
    colorbar.locator = MaxNLocator(integer=True)  # counts, not fractions
    colorbar.update_ticks()
    return save(fig, path)


def plot_errors(errors: list[dict], path: Path, columns: int = 6) -> Path:
    """A gallery of misclassified images, worst (most confident) first: each {'image', 'true', 'pred', 'confidence'}."""
    rows = max(1, -(-len(errors) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.75 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, error in zip(axes.flat, errors):
        with Image.open(error["image"]) as image:
            thumbnail = to_rgb(image)
            thumbnail.thumbnail(THUMBNAIL)
        ax.imshow(thumbnail)
        confidence = "" if np.isnan(error["confidence"]) else f" ({error['confidence']:.0%})"
        ax.set_title(f"true: {short(error['true'])}\npred: {short(error['pred'])}{confidence}", fontsize=9,
                     loc="left")
    if not errors:
        axes[0, 0].text(0, 0.5, "No misclassified images.", fontsize=12)
    fig.suptitle("Misclassified images, most confident mistakes first", fontsize=12)
    return save(fig, path)


def plot_curves(log_history: list[dict], best_step: int | None, path: Path) -> Path:
    """Training and validation loss, and validation accuracy (the Trainer logs no training accuracy), per epoch."""
    train = [e for e in log_history if "loss" in e and "epoch" in e]
    evals = [e for e in log_history if "eval_loss" in e]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    line(loss_ax, train, "loss", "training loss")
    line(loss_ax, evals, "eval_loss", "validation loss")
    line(acc_ax, evals, "eval_accuracy", "validation top-1")
    line(acc_ax, evals, "eval_top5_accuracy", "validation top-5")
    best_epoch = next((e["epoch"] for e in evals if e.get("step") == best_step), None)
    for ax, title in ((loss_ax, "Loss"), (acc_ax, "Accuracy")):
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label="best checkpoint")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=9)
    acc_ax.set_ylim(0, 1)
    return save(fig, path)


def line(ax, entries: list[dict], key: str, label: str) -> None:
    points = [(e["epoch"], e[key]) for e in entries if key in e]
    if points:
        ax.plot(*zip(*points), marker="o", markersize=3, label=label)


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_write(path, "wb") as file:  # a killed report never leaves half a picture
        fig.savefig(file, dpi=100, format=Path(path).suffix.lstrip("."))
    plt.close(fig)
    return path
