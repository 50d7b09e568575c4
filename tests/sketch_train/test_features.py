"""The frozen-backbone feature cache: a frozen part stays in eval mode, and the cached run trains what the uncached does."""

import contextlib
import json
import types

import numpy as np
import pytest
import torch
from conftest import run_in_this_process, tiny_run_flags
from datasets import Dataset, Features, Image, Value
from PIL import Image as PILImage
from PIL import ImageDraw
from safetensors.torch import load_file

from sketch_data.transforms import (
    Flipped,
    SampleSeeds,
    SketchAugment,
    eval_transform,
    train_transform,
)
from sketch_train.arguments import ModelArguments
from sketch_train.features import (
    FeatureCollator,
    FeatureStore,
    pooled_features,
    pooled_head_mismatch,
    training_views,
    tta_views,
)
from sketch_train.model import build_model
from sketch_train.optim import freeze_backbone

LABELS = ["cat", "dog", "fish"]


def tiny_model(**options):
    return build_model(ModelArguments(model_name_or_path="test_efficientnet", image_size=32, crop_pct=1.0,
                                      **options), LABELS)


def batchnorm_statistics(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: buffer.clone() for name, buffer in module.named_buffers() if "running" in name}


def test_a_frozen_backbone_keeps_its_batchnorm_statistics_through_trainers_model_train():
    model, _ = tiny_model()
    freeze_backbone(model)
    before = batchnorm_statistics(model.timm_model)
    model.train()  # what Trainer does before every step
    loss = model(torch.randn(4, 3, 32, 32), labels=torch.tensor([0, 1, 2, 0])).loss
    loss.backward()
    after = batchnorm_statistics(model.timm_model)
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert model.timm_model.classifier.weight.grad is not None and model.timm_model.training  # the head trains


def test_unfrozen_blocks_still_update_their_statistics():
    model, _ = tiny_model()
    freeze_backbone(model, unfreeze_last_n_blocks=1)
    trained = {name.rsplit(".", 1)[0] for name, p in model.timm_model.named_parameters() if p.requires_grad}
    before = batchnorm_statistics(model.timm_model)
    model.train()
    model(torch.randn(4, 3, 32, 32))
    changed = {name for name in before if not torch.equal(before[name], batchnorm_statistics(model.timm_model)[name])}
    assert changed == {name for name in before if name.rsplit(".", 1)[0] in trained}
    assert "bn2.running_mean" in changed and "bn1.running_mean" not in changed  # the last block's, not the stem's


def sketches(count: int) -> list[PILImage.Image]:
    images = []
    for i in range(count):
        image = PILImage.new("RGB", (48, 48), "white")
        ImageDraw.Draw(image).line([(4 + 3 * i, 6), (40, 30 + i)], fill="black", width=3)  # asymmetric strokes
        images.append(image)
    return images


def store_arguments(workers: int = 0) -> types.SimpleNamespace:
    """What FeatureStore reads of the training arguments, for one process."""
    return types.SimpleNamespace(fp16=False, bf16=False, per_device_eval_batch_size=3, dataloader_num_workers=workers,
                                 main_process_first=lambda desc: contextlib.nullcontext())


def sketch_files(folder, count: int) -> Dataset:
    folder.mkdir()
    paths = []
    for i, picture in enumerate(sketches(count)):
        paths.append(str(folder / f"{i}.png"))
        picture.save(paths[-1])
    return Dataset.from_dict({"image": paths, "image_path": [f"{i}.png" for i in range(count)]},
                             features=Features({"image": Image(), "image_path": Value("string")}))


@pytest.mark.parametrize("workers", [0, 2])
def test_views_are_the_eval_view_then_seeded_augmented_ones_and_a_rebuild_reuses_the_files(tmp_path, workers):
    model, processor = tiny_model()
    freeze_backbone(model)
    images = sketch_files(tmp_path / "images", 4)
    pictures = [picture.convert("RGB") for picture in images["image"]]
    to_eval = eval_transform(processor)
    always_flipped = train_transform(processor, SketchAugment(hflip=1.0))
    store = FeatureStore(model.timm_model, tmp_path / "cache", store_arguments(workers))
    features = store.features_of({"train": images}, training_views(to_eval, always_flipped, 2))["train"]
    assert features.features.shape == (4, 3, model.timm_model.num_features)
    assert features.columns["image_path"] == images["image_path"]
    plain = pooled_features(model.timm_model, torch.stack([to_eval(p) for p in pictures]))
    flipped = pooled_features(model.timm_model, torch.stack([Flipped(to_eval)(p) for p in pictures]))
    got = features.features.numpy()
    assert np.allclose(got[:, 0], plain, atol=1e-6) and not np.allclose(plain, flipped, atol=1e-3)
    assert np.allclose(got[:, 1], flipped, atol=1e-6) and np.allclose(got[:, 2], flipped, atol=1e-6)
    files = sorted((tmp_path / "cache").glob("features-*.npy"))
    assert len(files) == 3  # one per view
    mtimes = [file.stat().st_mtime_ns for file in files]
    shuffled = images.shuffle(seed=1)
    again = store.features_of({"train": shuffled}, training_views(to_eval, always_flipped, 2))["train"]
    assert sorted((tmp_path / "cache").glob("features-*.npy")) == files
    assert [file.stat().st_mtime_ns for file in files] == mtimes
    order = [images["image_path"].index(path) for path in shuffled["image_path"]]
    assert torch.equal(again.features, features.features[order])  # each split in its own order

    tta = store.features_of({"test": images}, tta_views(to_eval, ["hflip"]))["test"]
    assert len(sorted((tmp_path / "cache").glob("features-*.npy"))) == 4  # the eval view was there: only the flip
    assert torch.equal(tta.features[:, 0], features.features[:, 0])
    assert np.allclose(tta.view(1).features[:, 0].numpy(), flipped, atol=1e-6)


def test_training_picks_one_augmented_view_per_image_and_epoch_and_validation_the_eval_view():
    views = torch.arange(3 * 2, dtype=torch.float32).reshape(3, 2)  # view v holds [2v, 2v + 1]
    training = [{"features": views, "image_path": f"{i}.png", "label": 0} for i in range(50)]
    seeds = SampleSeeds(0)
    collate = FeatureCollator(seeds)
    picked = []
    for epoch in range(2):
        seeds.set_epoch(epoch)
        picked.append((collate(training)["pixel_values"][:, 0] // 2).int().tolist())
    assert set(picked[0]) == {1, 2} and picked[0] != picked[1]  # both augmented views, redrawn each epoch
    seeds.set_epoch(0)
    assert (collate(training)["pixel_values"][:, 0] // 2).int().tolist() == picked[0]  # a resume draws the same
    validation = [{**example, "features": views[:1]} for example in training]
    assert collate(validation)["pixel_values"].tolist() == [[0.0, 1.0]] * 50
    assert collate(validation)["labels"].tolist() == [0] * 50


CLASSIFIER = {"test_efficientnet": "classifier", "test_vit": "head"}  # a CNN and a ViT (class token, 2x2 patches)


@pytest.fixture(scope="module", params=sorted(CLASSIFIER))
def frozen_runs(request, tmp_path_factory, quickdraw_mini):
    """The same frozen-backbone run without augmentation, uncached and cached, in fp32; then another fold."""
    runs = {"architecture": request.param}
    other_fold = ["--num_folds", "2", "--fold", "1", "--num_train_epochs", "1", "--do_predict", "false"]
    for name, extra in (("uncached", ["--feature_cache", "off"]), ("cached", []), ("fold1", other_fold)):
        output_dir = tmp_path_factory.mktemp(name)
        flags = tiny_run_flags(quickdraw_mini, output_dir, "--model_name_or_path", request.param,
                               "--freeze_backbone", "true", "--hflip", "0", "--precision", "fp32",
                               "--learning_rate", "0.01", "--tta", "hflip", *extra)
        code, log = run_in_this_process(flags)
        assert code == 0, log[-3000:]
        runs[name] = (output_dir, log)
    return runs


def test_the_cached_run_trains_the_same_head_and_predicts_the_same(frozen_runs):
    (uncached, log_uncached), (cached, log_cached) = frozen_runs["uncached"], frozen_runs["cached"]
    assert "without the feature cache" in log_uncached and "without the feature cache" not in log_cached
    assert "Reusing cached backbone features" not in log_cached  # it built them; the other fold's run reuses them
    assert "test.csv's 20 images x 2 view(s) too" in log_cached  # predicted, with the flip, from cached features
    expected, got = load_file(uncached / "model.safetensors"), load_file(cached / "model.safetensors")
    assert set(got) == set(expected)  # the full backbone and the head, so pipeline() loads it unchanged
    for name in expected:
        assert torch.allclose(got[name].float(), expected[name].float(), atol=1e-5), name
    classifier = got[f"timm_model.{CLASSIFIER[frozen_runs['architecture']]}.weight"]
    assert not torch.equal(classifier, torch.zeros_like(classifier))
    assert np.allclose(np.load(cached / "test_logits.npy"), np.load(uncached / "test_logits.npy"), atol=1e-5)
    assert np.allclose(np.load(cached / "eval_logits.npy"), np.load(uncached / "eval_logits.npy"), atol=1e-5)
    results = [json.loads((run / "all_results.json").read_text()) for run in (cached, uncached)]
    assert results[0]["eval_accuracy"] == results[1]["eval_accuracy"]


def test_a_vits_cached_features_are_its_normed_class_token():
    model, _ = build_model(ModelArguments(model_name_or_path="test_vit", image_size=32), LABELS)
    freeze_backbone(model)
    pixels = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        class_token = model.timm_model.forward_head(model.timm_model.forward_features(pixels), pre_logits=True)
    assert np.allclose(pooled_features(model.timm_model, pixels), class_token.numpy(), atol=1e-6)
    assert pooled_head_mismatch(model.timm_model, 32, images=10, views=1) is None


def test_an_attention_pool_head_is_not_cached_and_the_reason_gives_the_tokens_size():
    model, _ = build_model(ModelArguments(model_name_or_path="test_vit", image_size=32, head="attention_pool"), LABELS)
    reason = pooled_head_mismatch(model.timm_model, 32, images=1000, views=2)
    tokens, width = 1 + 2 * 2, model.timm_model.num_features  # the class token and 2x2 patches
    assert "reads every token" in reason and f"all {tokens} tokens x {width}" in reason
    assert f"{tokens * width * 4 * 1000 * 2 / 2**30:.1f} GiB for these 1000 images x 2 view(s)" in reason


def test_another_fold_reuses_the_cache(frozen_runs):
    """Folds split the same labelled images differently; the cache holds them all, sorted by path, not by split.
    (Seeds reuse it too where the backbone is a checkpoint: the key leaves out the new head; here a seed would
    change test_efficientnet's random backbone.)"""
    _, log = frozen_runs["fold1"]
    assert "Reusing cached backbone features" in log


def test_an_mlp_head_on_a_convnext_trains_on_the_cache():
    model, _ = build_model(ModelArguments(model_name_or_path="test_convnext", image_size=32, head="mlp",
                                          head_hidden_size=16), LABELS)
    assert pooled_head_mismatch(model.timm_model, 32, images=10, views=1) is None


def test_another_seed_reuses_the_features_and_other_frozen_weights_do_not(tmp_path):
    """A seed draws a new head; the key holds the frozen tensors alone, so every seed reads the same files."""
    images = sketch_files(tmp_path / "images", 3)
    model, processor = tiny_model()
    freeze_backbone(model)
    views = training_views(eval_transform(processor), eval_transform(processor), 0)
    FeatureStore(model.timm_model, tmp_path / "cache", store_arguments()).features_of({"train": images}, views)
    files = sorted((tmp_path / "cache").glob("features-*.npy"))
    torch.nn.init.normal_(model.timm_model.classifier.weight)  # what another --seed does to the new head
    FeatureStore(model.timm_model, tmp_path / "cache", store_arguments()).features_of({"train": images}, views)
    assert sorted((tmp_path / "cache").glob("features-*.npy")) == files
    with torch.no_grad():
        model.timm_model.conv_stem.weight.mul_(2)  # another backbone: its own features
    FeatureStore(model.timm_model, tmp_path / "cache", store_arguments()).features_of({"train": images}, views)
    assert len(list((tmp_path / "cache").glob("features-*.npy"))) == len(files) + 1


def test_a_features_file_cut_short_is_computed_again_and_a_killed_writers_temporary_removed(tmp_path, caplog):
    images = sketch_files(tmp_path / "images", 3)
    model, processor = tiny_model()
    freeze_backbone(model)
    views = training_views(eval_transform(processor), eval_transform(processor), 0)
    store = FeatureStore(model.timm_model, tmp_path / "cache", store_arguments())
    expected = store.features_of({"train": images}, views)["train"].features
    file, = (tmp_path / "cache").glob("features-*.npy")
    file.write_bytes(file.read_bytes()[:100])  # a power cut after the rename, before the data reached the disk
    orphan = tmp_path / "cache" / f".{file.name}.999999999-0123abcd.partial"  # a writer's, killed (no such pid)
    orphan.write_bytes(b"half")
    caplog.set_level("INFO", logger="sketch_train.features")
    again = store.features_of({"train": images}, views)["train"].features
    assert f"Computing {file} again: it does not read" in caplog.text and torch.equal(again, expected)
    assert not orphan.exists() and np.array_equal(np.load(file), expected[:, 0].numpy())
