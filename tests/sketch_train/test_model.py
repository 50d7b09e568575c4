"""Model building: bare timm names, local checkpoints, saved preprocessing, inversion folded into normalisation."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from timm.layers import DropPath

from sketch_data.transforms import eval_transform
from sketch_train.arguments import ModelArguments
from sketch_train.model import ModelSourceError, build_model

LABELS = ["cat", "dog", "fish"]


def test_bare_architecture_gets_new_head_labels_and_input_size():
    model, processor = build_model(ModelArguments(model_name_or_path="test_convnext", image_size=48), LABELS)
    assert model.config.id2label == {0: "cat", 1: "dog", 2: "fish"}
    assert model(torch.zeros(2, 3, 48, 48)).logits.shape == (2, 3)
    assert processor.data_config["input_size"] == (3, 48, 48)


def test_invert_is_folded_into_the_saved_normalisation():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    plain = build_model(ModelArguments(model_name_or_path="test_convnext", image_size=32, crop_pct=1.0), LABELS)[1]
    inverted = build_model(ModelArguments(model_name_or_path="test_convnext", image_size=32, crop_pct=1.0,
                                          invert=True), LABELS)[1]
    expected = eval_transform(plain)(ImageOps.invert(image))
    assert torch.allclose(eval_transform(inverted)(image), expected, atol=1e-5)


def test_unknown_architecture_is_named_with_suggestions():
    with pytest.raises(ModelSourceError, match="'convnext_attoo' is not a timm architecture.*convnext"):
        build_model(ModelArguments(model_name_or_path="convnext_attoo"), LABELS)


def test_saved_model_reloads_with_a_different_label_set(tmp_path):
    model, _ = build_model(ModelArguments(model_name_or_path="test_convnext", image_size=40), LABELS)
    model.save_pretrained(tmp_path)
    reloaded, processor = build_model(ModelArguments(model_name_or_path=str(tmp_path)), ["a", "b", "c", "d", "e"])
    assert reloaded.config.num_labels == 5 and reloaded.config.label_names == ["a", "b", "c", "d", "e"]
    assert processor.data_config["input_size"] == (3, 40, 40)  # preprocessing travels with the checkpoint
    stem = "timm_model.stem.0.weight"
    assert torch.equal(reloaded.state_dict()[stem], model.state_dict()[stem])


def drop_path_rates(model) -> list[float]:
    return [round(m.drop_prob, 4) for m in model.modules() if isinstance(m, DropPath)]


def test_drop_path_rate_reaches_the_timm_blocks_and_the_saved_config(tmp_path):
    plain, _ = build_model(ModelArguments(model_name_or_path="test_convnext", image_size=32), LABELS)
    assert drop_path_rates(plain) == []
    model, _ = build_model(ModelArguments(model_name_or_path="test_convnext", image_size=32, drop_path_rate=0.3), LABELS)
    rates = drop_path_rates(model)
    assert rates[-1] == 0.3 and rates == sorted(rates) and len(rates) == 8  # timm's linear schedule over 9 blocks
    model.save_pretrained(tmp_path)
    finetuned, _ = build_model(ModelArguments(model_name_or_path=str(tmp_path), drop_path_rate=0.1), LABELS)
    assert drop_path_rates(finetuned)[-1] == 0.1  # a checkpoint fine-tuned with another rate


def test_new_model_options_merge_with_the_checkpoints_own(tmp_path):
    args = ModelArguments(model_name_or_path="test_convnext", image_size=32, head="mlp", head_hidden_size=16)
    build_model(args, LABELS)[0].save_pretrained(tmp_path)
    reloaded, _ = build_model(ModelArguments(model_name_or_path=str(tmp_path), drop_path_rate=0.1), LABELS)
    assert reloaded.config.model_args["drop_path_rate"] == 0.1
    assert reloaded.config.model_args["head_hidden_size"] == 16  # the MLP head survives
