"""Heads set through timm's constructor: built as asked, initialised, and rebuilt by from_pretrained and pipeline()."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageClassification, pipeline

from sketch_train.arguments import ModelArguments
from sketch_train.model import ModelSourceError, build_model

LABELS = ["cat", "dog", "fish"]


def test_mlp_head_is_rebuilt_by_pipeline(tmp_path):
    model, processor = build_model(
        ModelArguments(model_name_or_path="test_convnext", image_size=32, head="mlp", head_hidden_size=24), LABELS)
    assert model.timm_model.head.pre_logits.fc.out_features == 24
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    for name, weight in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], weight), name
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    assert {p["label"] for p in pipeline("image-classification", model=str(tmp_path))(image, top_k=3)} == set(LABELS)


def test_attention_pool_head_on_a_checkpoint_gets_timms_initialisation(tmp_path):
    build_model(ModelArguments(model_name_or_path="test_vit", image_size=32), LABELS)[0].save_pretrained(tmp_path)
    model, _ = build_model(ModelArguments(model_name_or_path=str(tmp_path), head="attention_pool"), LABELS)
    latent = model.timm_model.attn_pool.latent
    # transformers leaves this parameter uninitialised (values up to ~1e38); timm draws it with std dim^-0.5
    assert latent.abs().max() < 1 and 0.05 < latent.std() < 0.3
    assert torch.isfinite(model(torch.rand(2, 3, 32, 32)).logits).all()
    model.save_pretrained(tmp_path / "saved")
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "saved")
    assert torch.equal(reloaded.timm_model.attn_pool.latent, latent)


def test_mlp_head_on_an_architecture_without_one_says_what_works():
    with pytest.raises(ModelSourceError, match="unexpected keyword argument 'head_hidden_size'.*--head attention_pool"):
        build_model(ModelArguments(model_name_or_path="test_vit", head="mlp"), LABELS)


@pytest.mark.parametrize("options, message", [
    ({"head": "mlpp"}, "head='mlpp': use linear, mlp, attention_pool"),
    ({"unfreeze_last_n_blocks": 2}, "unfreeze_last_n_blocks needs --freeze_backbone true"),
])
def test_bad_head_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        ModelArguments(**options)
