"""Every form a pretrained checkpoint comes in fine-tunes with a new head, and its weights really arrive.

The real ImageNet-pretrained tf_efficientnet_lite0 in ../shared/models, on disk in every layout a user may have.
(tests/sketch_train/test_model_families.py serves it, as `timm/tf_efficientnet_lite0.in1k`, through the test Hub to
the real huggingface_hub client, under each of the Hub id's spellings, beside the other families.)
"""

import os
from pathlib import Path

import pytest
import timm
import torch
from conftest import REPO
from safetensors.torch import load_file
from timm.models import save_for_hf
from transformers import TimmWrapperForImageClassification

from sketch_train.arguments import ModelArguments
from sketch_train.model import build_model

CHECKPOINT = REPO.parent / "shared" / "models" / "tf_efficientnet_lite0.in1k"
LABELS = ["cat", "dog", "fish"]


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, torch.Tensor]:
    if not (CHECKPOINT / "model.safetensors").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHECKPOINT} is missing; CI must run with ../shared/models beside the checkout.")
        pytest.skip(f"{CHECKPOINT} not available on this machine")
    return load_file(CHECKPOINT / "model.safetensors")


def assert_pretrained_backbone_and_new_head(state: dict[str, torch.Tensor], checkpoint: dict, num_labels: int):
    """Every backbone tensor is the checkpoint's; the classifier is a new one with one output per label."""
    backbone = {key for key in checkpoint if not key.startswith("classifier.")}
    assert {key for key in state if not key.startswith("classifier.")} == backbone
    different = [key for key in sorted(backbone) if not torch.equal(state[key], checkpoint[key])]
    assert different == []
    assert checkpoint["classifier.weight"].shape == (1000, 1280)
    assert state["classifier.weight"].shape == (num_labels, 1280) and state["classifier.bias"].shape == (num_labels,)


def test_hub_users_keep_the_convnext_default():
    assert ModelArguments().model_name_or_path == "timm/convnext_base.fb_in22k_ft_in1k"


def _same_folder(tmp_path: Path) -> Path:
    return CHECKPOINT


def _timm_save_for_hf(tmp_path: Path) -> Path:
    model = timm.create_model("tf_efficientnet_lite0", pretrained=True,
                              pretrained_cfg_overlay={"file": str(CHECKPOINT / "model.safetensors")})
    save_for_hf(model, tmp_path / "timm", safe_serialization=True)
    config = (tmp_path / "timm" / "config.json").read_text()
    assert '"model_args"' in config and '"num_classes": 1000' in config  # the form that used to collide
    return tmp_path / "timm"


def _transformers_save_pretrained(tmp_path: Path) -> Path:
    TimmWrapperForImageClassification.from_pretrained(CHECKPOINT).save_pretrained(tmp_path / "transformers")
    return tmp_path / "transformers"


def _run_folder_with_other_classes(tmp_path: Path) -> Path:
    model, processor = build_model(ModelArguments(model_name_or_path=str(CHECKPOINT)), ["a", "b", "c", "d", "e"])
    model.save_pretrained(tmp_path / "run")  # what Trainer.save_model writes
    processor.save_pretrained(tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize("make_folder", [_same_folder, _timm_save_for_hf, _transformers_save_pretrained,
                                         _run_folder_with_other_classes], ids=lambda f: f.__name__.strip("_"))
def test_a_checkpoint_folder_fine_tunes_with_a_new_head(make_folder, checkpoint, tmp_path):
    model, _ = build_model(ModelArguments(model_name_or_path=str(make_folder(tmp_path))), LABELS)
    assert model.config.num_labels == 3 and model.config.label_names == LABELS
    assert_pretrained_backbone_and_new_head(model.timm_model.state_dict(), checkpoint, len(LABELS))
    assert "num_classes" not in (model.config.model_args or {})  # the saved model reloads with its own head
    assert model(torch.zeros(1, 3, 64, 64)).logits.shape == (1, 3)


def test_the_new_head_is_not_left_uninitialised(checkpoint):
    model, _ = build_model(ModelArguments(model_name_or_path=str(CHECKPOINT)), LABELS)
    weight = model.timm_model.classifier.weight
    assert torch.isfinite(weight).all() and 0 < weight.std() < 1
