"""Every family users fine-tune (a CNN, ConvNeXt, ViT, EVA, a SigLIP tower) loads its pretrained weights at another
image size, named every way a user names a model, and the saved run reloads in pipeline().

The checkpoints are the real architectures shrunk (tests/shrunk_models.py), served by the test Hub under their real
ids to huggingface_hub's real client (in this process, `client_pointed_at`), each downloaded into an empty cache; the CNN is the real ImageNet-pretrained
tf_efficientnet_lite0 in ../shared, served as timm/tf_efficientnet_lite0.in1k.
Each backbone tensor must equal the checkpoint's, or timm's resampling of it (position embeddings at a new grid).
"""

import json
import logging
from pathlib import Path

import huggingface_hub
import pytest
import torch
from conftest import logged, run_in_this_process, tiny_run_flags
from fake_hub import FakeHub, client_pointed_at
from PIL import Image
from safetensors.torch import load_file
from shrunk_models import save_shrunk
from test_pretrained_checkpoints import CHECKPOINT
from timm.layers import resample_abs_pos_embed
from transformers import pipeline

from sketch_train.arguments import ModelArguments
from sketch_train.model import ModelSourceError, build_model

LABELS = ["cat", "dog", "fish"]
LITE0 = "timm/tf_efficientnet_lite0.in1k"  # the real ImageNet weights in ../shared/models
# family -> (model_name_or_path as a user writes it, the checkpoint's Hub id, image size); None: the checkpoint's own
FAMILIES = {
    "cnn": (LITE0, LITE0, 96),
    "convnext": ("convnext_base.fb_in22k_ft_in1k", "timm/convnext_base.fb_in22k_ft_in1k", 64),  # timm's arch.tag
    "vit": ("timm/vit_base_patch16_224.augreg2_in21k_ft_in1k", "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k", 64),
    "eva": ("hf-hub:timm/eva02_large_patch14_448.mim_m38m_ft_in22k_in1k",
            "timm/eva02_large_patch14_448.mim_m38m_ft_in22k_in1k", 56),
    "siglip": ("timm/vit_base_patch16_siglip_224.webli", "timm/vit_base_patch16_siglip_224.webli", 64),
    # the real weights named timm's other two ways, at their own size
    "lite0_hf_hub": (f"hf-hub:{LITE0}", LITE0, None),
    "lite0_timm_tag": (LITE0.removeprefix("timm/"), LITE0, None),
}
MISSING_ON_THE_HUB = "convnext_atto.d2_in1k"


def build_and_save(source: str, image_size: int | None, out: Path) -> str:
    """Build the model as a run does, downloading into an empty cache of its own, and save it as Trainer.save_model
    does; return the log (a source that cannot be loaded: its one-line error)."""
    ours = logging.getLogger("sketch_train")
    level, _ = ours.level, ours.setLevel(logging.INFO)  # as a run sets it (run_classification.setup_logging)
    with logged() as lines:
        try:
            arguments = ModelArguments(model_name_or_path=source, image_size=image_size, cache_dir=f"{out}.cache")
            model, processor = build_model(arguments, LABELS)
            model.save_pretrained(out)
        except ModelSourceError as error:
            lines.append(f"ERROR {error}")
        finally:
            ours.setLevel(level)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path | None, Path, str]]:
    """family -> (checkpoint folder, the saved model's folder, its build log)."""
    if not (CHECKPOINT / "model.safetensors").is_file():
        pytest.skip(f"{CHECKPOINT} not available")  # test_pretrained_checkpoints fails for it under CI
    root = tmp_path_factory.mktemp("families")
    hub_ids = {hub_id for _, hub_id, _ in FAMILIES.values()}
    checkpoints = {hub_id: CHECKPOINT if hub_id == LITE0 else save_shrunk(hub_id, root / "checkpoints" / hub_id)
                   for hub_id in hub_ids}
    jobs = {family: (source, size, checkpoints[hub_id]) for family, (source, hub_id, size) in FAMILIES.items()}
    jobs["missing"] = (MISSING_ON_THE_HUB, 64, None)
    with FakeHub(root / "hub", token="hf_unused") as hub, client_pointed_at(hub):
        for hub_id, folder in checkpoints.items():
            hub.serve_folder(hub_id, folder)
        return {family: (checkpoint, root / family, build_and_save(source, size, root / family))
                for family, (source, size, checkpoint) in jobs.items()}


def without_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key.removeprefix("timm_model."): value for key, value in state.items()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_checkpoint_downloads_into_the_runs_empty_cache(built, family):
    checkpoint_folder, run, _ = built[family]
    repo = FAMILIES[family][1].replace("/", "--")
    snapshot = next((Path(f"{run}.cache") / f"models--{repo}" / "snapshots").iterdir())
    assert (snapshot / "model.safetensors").read_bytes() == (checkpoint_folder / "model.safetensors").read_bytes()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_backbone_tensor_is_the_checkpoints_or_timms_resampling_of_it(built, family):
    checkpoint_folder, run, log = built[family]
    checkpoint = load_file(checkpoint_folder / "model.safetensors")
    config = json.loads((checkpoint_folder / "config.json").read_text())
    native = config["pretrained_cfg"]["input_size"][-1]
    size = FAMILIES[family][2] or native
    classifier = f"{config['pretrained_cfg']['classifier']}."
    ours = without_prefix(load_file(run / "model.safetensors"))
    assert set(checkpoint) - set(ours) == set()  # nothing dropped
    for key, tensor in checkpoint.items():
        if key.startswith(classifier):
            continue  # the new head, below
        if key == "pos_embed" and size != native:
            patch = native // round((tensor.shape[1]) ** 0.5)
            prefix = tensor.shape[1] - (native // patch) ** 2  # the class token, if the model has one
            tensor = resample_abs_pos_embed(tensor, new_size=[size // patch] * 2, num_prefix_tokens=prefix)
            assert ours[key].shape == tensor.shape
            assert "Resampled pos_embed" in log
        assert torch.allclose(ours[key], tensor, atol=1e-6), key
    assert ours[f"{classifier}weight"].shape[0] == len(LABELS)
    assert "Backbone tensors" not in log  # no warning: nothing re-initialised, new or dropped in the backbone


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_saved_model_reloads_in_pipeline_at_its_size(built, family):
    _, run, _ = built[family]
    model_args = json.loads((run / "config.json").read_text()).get("model_args") or {}
    size = FAMILIES[family][2]
    fixed_size = family in ("vit", "eva", "siglip")
    assert model_args.get("img_size") == (size if fixed_size else None)  # so pipeline() rebuilds the same shapes
    classifier = pipeline("image-classification", model=str(run))
    scores = classifier(Image.new("RGB", (300, 200), "white"), top_k=len(LABELS))
    assert sorted(score["label"] for score in scores) == LABELS
    reloaded = without_prefix(classifier.model.state_dict())
    assert all(torch.equal(reloaded[key], value) for key, value in without_prefix(load_file(run / "model.safetensors")).items())


def test_a_timm_tag_the_hub_lacks_stops_with_one_line_that_says_what_to_do(built):
    *_, log = built["missing"]
    assert log.count("\n") == 0 and log.startswith("ERROR could not load 'timm/convnext_atto.d2_in1k'")
    assert "hf download timm/convnext_atto.d2_in1k --local-dir DIR" in log and "random weights" in log


def test_a_timm_tag_offline_stops_the_run_before_training(quickdraw_mini, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    flags = tiny_run_flags(quickdraw_mini, tmp_path / "run", "--model_name_or_path", "convnext_atto.d2_in1k")
    code, _ = run_in_this_process(flags)
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.count("\n") == 0
    assert error.startswith("error: could not load 'timm/convnext_atto.d2_in1k'") and "--model_name_or_path DIR" in error
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_bare_architecture_warns_of_random_weights_and_names_its_pretrained_tag():
    with logged() as lines:
        model, _ = build_model(ModelArguments(model_name_or_path="convnext_atto", image_size=32), LABELS)
    assert any("random weights" in line and "timm/convnext_atto.d2_in1k" in line for line in lines)
    assert model.config.num_labels == 3


def test_a_bare_vit_takes_any_image_size_through_timms_img_size(tmp_path):
    model, _ = build_model(ModelArguments(model_name_or_path="test_vit", image_size=48), LABELS)
    assert model.config.model_args["img_size"] == 48
    assert model(torch.zeros(1, 3, 48, 48)).logits.shape == (1, 3)
