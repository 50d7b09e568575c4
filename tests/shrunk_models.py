"""Shrunk checkpoints of the architectures users fine-tune, to serve under their real Hub ids (tests/fake_hub.py).

Each is timm's own architecture and pretrained tag (so its pretrained_cfg: size, crop, mean/std, classifier name) with
fewer blocks and narrower layers, set through timm's constructor arguments and saved with timm's `save_for_hf`, as
timm's Hub repositories are: config.json with `architecture`, `pretrained_cfg` and the `model_args` that rebuild the
shrunk shapes. Weights are drawn from a fixed seed and then perturbed, so that a tensor that did not arrive (a
re-initialised or default-valued one) cannot equal its checkpoint by chance.
"""

from pathlib import Path

import timm
import torch
from timm.models import save_for_hf

# Hub id -> timm constructor arguments that shrink it (a few MB at most, a training step in well under a second)
SHRUNK = {
    "timm/convnext_base.fb_in22k_ft_in1k": {"depths": [1, 1, 2, 1], "dims": [16, 24, 32, 48]},
    "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k": {"depth": 2, "embed_dim": 32, "num_heads": 2},
    "timm/eva02_large_patch14_448.mim_m38m_ft_in22k_in1k": {"depth": 2, "embed_dim": 32, "num_heads": 2},
    "timm/vit_base_patch16_siglip_224.webli": {"depth": 2, "embed_dim": 32, "num_heads": 2},  # a SigLIP image tower
}


def save_shrunk(hub_id: str, folder: Path, seed: int = 0) -> Path:
    """Write the shrunk checkpoint of `hub_id` into `folder` (model.safetensors, config.json); return the folder."""
    torch.manual_seed(seed)
    model = timm.create_model(hub_id.removeprefix("timm/"), pretrained=False, **SHRUNK[hub_id])
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor) * 0.02)  # no tensor keeps timm's default (ones, zeros)
    save_for_hf(model, folder, model_args=SHRUNK[hub_id], safe_serialization=True)
    return Path(folder)
