"""Frozen-backbone feature cache: the backbone runs once per image and view, the head trains on its pooled output.

With `--freeze_backbone true` and no unfrozen blocks, every epoch would run the same frozen backbone over the same
images again. Instead, the pooled features of the eval view (and of `--feature_cache_views` K augmented views) of
every labelled image (a CNN's spatially averaged map; a ViT's or EVA's average or class token, after its frozen
norm) are computed once, with `datasets.map` (batched, under inference_mode, in eval mode), into an
Arrow file in the pre-resize cache's folder. The training and validation splits then hold those features, and the
*same* model trains on them with the same Trainer: its `forward_features` takes a batch of pooled features
(2-D) as already computed and runs the full backbone on images (4-D), so checkpoints, the saved model (backbone +
head), `pipeline()`, `--do_predict` and the model card are those of an uncached run. First the head is checked to
give the same logits from the pooled features as from the whole backbone output; where it does not (an
attention-pool head reads every token), the run trains from images and says why.

The cache is keyed by the images' content, the frozen weights, the transforms and K, not by the split: every fold
of a k-fold run (the same labelled images, split differently) and every seed reuse it.
"""

import hashlib
import logging
import re
import types
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import torch
from datasets import Array2D, Dataset, DatasetDict, Features, concatenate_datasets
from datasets import Image as ImageFeature
from datasets.fingerprint import Hasher
from timm.models.vision_transformer import global_pool_nlc

from sketch_data.cache import building_in
from sketch_data.transforms import BatchTransform, SampleSeeds

logger = logging.getLogger(__name__)
FEATURE_CACHE_VERSION = 1  # bump when what is stored changes, so old files are not reused
VIEW_SEED = 0  # the augmented views do not depend on the training seed, so that seeds share one cache
LABELLED = ("train", "validation")  # the test split is predicted from images, by the full model
NLC_POOLS = ("avg", "token", "max", "avgmax")  # the token poolings global_pool_nlc does: one vector per image


def feature_cache_reason(model_args, data_args, training_args) -> str | None:
    """Why the feature cache does not apply to this run (None: it does)."""
    if model_args.feature_cache == "off":
        return "--feature_cache off"
    if not model_args.freeze_backbone:
        return "the backbone trains"
    if model_args.unfreeze_last_n_blocks:
        return "--unfreeze_last_n_blocks trains part of the backbone"
    if not training_args.do_train:
        return "nothing trains"
    if training_args.mixup_alpha or training_args.cutmix_alpha:
        return "mixup/CutMix mix images, not features"
    if data_args.curriculum:
        return "--curriculum changes the augmentation by epoch"
    return None


def use_cached_features(model, splits: DatasetDict, recipe, to_eval: Callable, to_train: Callable, model_args,
                        data_args, training_args, cache_folder: Path | None) -> tuple[DatasetDict, Callable]:
    """The splits and collator to train with: cached features where the option applies, else those given.

    `recipe.sample_seeds` (advanced by its epoch callback) picks each image's augmented view per epoch.
    """
    labelled = [name for name in LABELLED if name in splits]
    reason = feature_cache_reason(model_args, data_args, training_args)
    if reason is None:
        model.to(training_args.device)  # where Trainer will put it: a GPU computes the features too
        reason = pooled_head_mismatch(model.timm_model, model.config.pretrained_cfg["input_size"][-1],
                                      sum(len(splits[name]) for name in labelled), model_args.feature_cache_views + 1)
    if reason:
        logger.info("Training from images, without the feature cache: %s.", reason)
        return splits, recipe.collator
    folder = Path(cache_folder or Path(datasets.config.HF_DATASETS_CACHE) / "sketch_preresized")
    autocast = torch.float16 if training_args.fp16 else torch.bfloat16 if training_args.bf16 else None
    table = build_feature_table(model.timm_model, concatenate_datasets([splits[name] for name in labelled]), to_eval,
                                to_train, model_args.feature_cache_views, folder, autocast,
                                training_args.per_device_eval_batch_size)
    cached = DatasetDict(splits)
    for name in labelled:
        split = _features_of(splits[name], table)
        if name == "train":
            cached[name] = FeatureTensors(split)
        else:  # torch format: Arrow -> tensor without Python lists; evaluated once per epoch, so Arrow is fast enough
            cached[name] = _eval_view_only(split).with_format("torch", columns=["features"], output_all_columns=True)
    accept_pooled_features(model.timm_model)
    logger.info("Training the head on cached backbone features (%s): %d images x %d view(s) x %d floats", "pooled "
                "tokens" if _outputs_tokens(model.timm_model) else "pooled feature map", len(table),
                model_args.feature_cache_views + 1, model.timm_model.num_features)
    return cached, FeatureCollator(recipe.sample_seeds, recipe.collator)


def build_feature_table(timm_model, images: Dataset, to_eval: Callable, to_train: Callable, views: int,
                        folder: Path, autocast_dtype: torch.dtype | None, batch_size: int) -> Dataset:
    """`image_path` and `features` (views + 1, C): view 0 the eval transform, then `views` augmented ones."""
    images = images.with_format(None).select_columns(["image", "image_path"]).sort("image_path")
    key = Hasher.hash([FEATURE_CACHE_VERSION, _content_key(images), _weights_key(timm_model), _describe(to_eval),
                       _describe(to_train) if views else None, views, VIEW_SEED, str(autocast_dtype)])
    path = folder / f"features-{key}.arrow"
    folder.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        logger.info("Reusing cached backbone features from %s", path)
    transforms = [BatchTransform(to_eval)] + [BatchTransform(to_train, _view_seeds(view)) for view in range(views)]
    width = timm_model.num_features
    was_training = timm_model.training
    timm_model.eval()  # BatchNorm statistics and dropout as in the frozen training (see optim.freeze_backbone)
    try:
        with building_in(folder):
            table = images.map(
                _encode_batch, batched=True, batch_size=batch_size, remove_columns=["image"],
                fn_kwargs={"timm_model": timm_model, "transforms": transforms, "autocast_dtype": autocast_dtype},
                features=Features({"image_path": images.features["image_path"],
                                   "features": Array2D((views + 1, width), "float32")}),
                cache_file_name=str(path), new_fingerprint=key,  # the key, not a hash of the model and transforms
                desc=f"Computing backbone features of {len(images)} images x {views + 1} view(s)",
            )
    finally:
        timm_model.train(was_training)
    return table


def _encode_batch(batch: dict, timm_model, transforms: list[BatchTransform], autocast_dtype) -> dict:
    views = []
    for transform in transforms:
        pixels = torch.stack(transform({"image": batch["image"], "image_path": batch["image_path"]})["pixel_values"])
        views.append(pooled_features(timm_model, pixels, autocast_dtype))
    return {"image_path": batch["image_path"], "features": np.stack(views, axis=1)}


def pooled_features(timm_model, pixels: torch.Tensor, autocast_dtype: torch.dtype | None = None) -> np.ndarray:
    """What the head's pooling makes of the frozen backbone's output: the feature map's spatial average (CNNs), or
    the average or class token of the normed tokens (ViT, EVA, DeiT, CLIP/SigLIP towers)."""
    memory_format = torch.channels_last if _is_channels_last(timm_model) else torch.contiguous_format
    device = next(timm_model.parameters()).device
    pixels = pixels.to(device, memory_format=memory_format)
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                                enabled=autocast_dtype is not None):
        return _pooled(timm_model, _backbone(timm_model)(pixels)).float().cpu().numpy()


def _pooled(timm_model, output: torch.Tensor) -> torch.Tensor:
    if output.ndim == 4:
        return output.mean((2, 3))
    return global_pool_nlc(output, pool_type=timm_model.global_pool, num_prefix_tokens=timm_model.num_prefix_tokens)


def pooled_head_mismatch(timm_model, size: int, images: int, views: int) -> str | None:
    """Why the head does not give the same logits from the pooled features as from the backbone's whole output
    (None: it does), checked on random pixels at the run's input size."""
    generator = torch.Generator().manual_seed(0)  # not the global generator: training draws from it
    pixels = torch.randn(2, 3, size, size, generator=generator).to(next(timm_model.parameters()).device)
    was_training = timm_model.training
    timm_model.eval()
    try:
        with torch.inference_mode():
            output = _backbone(timm_model)(pixels)
            if output.ndim == 3 and (getattr(timm_model, "attn_pool", None) is not None
                                     or getattr(timm_model, "global_pool", None) not in NLC_POOLS):
                per_image = output[0].numel() * 4
                return (f"the head ({type(timm_model).__name__} with global_pool={timm_model.global_pool!r}) reads "
                        f"every token, not a pooled vector; caching all {output.shape[1]} tokens x {output.shape[2]} "
                        f"would take {per_image / 2**20:.2f} MiB per image and view, "
                        f"{per_image * images * views / 2**30:.1f} GiB for these {images} images x {views} view(s)")
            pooled = _pooled(timm_model, output)
            same = torch.allclose(timm_model.forward_head(output),
                                  timm_model.forward_head(_as_backbone_output(timm_model, pooled)),
                                  atol=1e-5)
    except (RuntimeError, AssertionError, AttributeError) as error:
        return f"the head could not be checked on pooled features ({type(error).__name__}: {error})"
    finally:
        timm_model.train(was_training)
    return None if same else f"{type(timm_model).__name__}'s head does not start with an average or class-token pool"


def _as_backbone_output(timm_model, pooled: torch.Tensor) -> torch.Tensor:
    """A backbone output that the head pools back into `pooled`: every token equal to it (so that the average of the
    patch tokens and the class token both give it), or a 1x1 map. The head check above builds it the same way, so a
    model this guesses wrong for is never cached."""
    if _outputs_tokens(timm_model):
        return pooled[:, None, :].expand(-1, timm_model.num_prefix_tokens + 1, -1)
    return pooled[:, :, None, None]


def accept_pooled_features(timm_model) -> None:
    """Make `forward_features` take pooled features (batch, C) as computed; images still go through the backbone.

    Bound with MethodType, so that a deep copy (the EMA's) dispatches to its own backbone.
    """
    timm_model.forward_features = types.MethodType(_features_or_pooled, timm_model)


def _features_or_pooled(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
    if x.ndim == 2:  # cached pooled features, which the head pools back into themselves
        return _as_backbone_output(self, x)
    return type(self).forward_features(self, x, **kwargs)


def _backbone(timm_model) -> Callable:
    return lambda pixels: type(timm_model).forward_features(timm_model, pixels)


def _outputs_tokens(timm_model) -> bool:
    """Whether the backbone outputs tokens (ViT, EVA, DeiT: they have `num_prefix_tokens`) rather than a feature map."""
    return hasattr(timm_model, "num_prefix_tokens")


def _is_channels_last(module: torch.nn.Module) -> bool:
    weight = next((p for p in module.parameters() if p.ndim == 4), None)
    return weight is not None and weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


class FeatureTensors(torch.utils.data.Dataset):
    """A training split's cached features, read from the Arrow table once into one tensor (images, views, C).

    Trainer's loader reads every example every epoch; decoding an Arrow row costs ~0.1 ms, more than the linear
    head's whole step per image, so the examples are indexed from memory instead (~8 KB per image and view).
    """

    def __init__(self, split: Dataset):
        self.features = split.with_format("torch", columns=["features"])[:]["features"]  # [:]: read, not a view
        self.columns = split.with_format(None).remove_columns("features")[:]

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, row: int) -> dict:
        return {"features": self.features[row]} | {name: values[row] for name, values in self.columns.items()}


class FeatureCollator:
    """Batches of cached features. A training example holds the eval view and K augmented ones: one augmented view
    is drawn per image and epoch from the run's per-example seeds (so a resumed run draws what an uninterrupted one
    does); a validation example (or any, with K = 0) holds the eval view alone. Images (the test split, predicted
    by the full model) go to the run's own collator."""

    def __init__(self, seeds: SampleSeeds, images: Callable | None = None):
        self.seeds, self.images = seeds, images

    def __call__(self, examples: list[dict]) -> dict:
        if "features" not in examples[0]:
            return self.images(examples)
        batch = {"pixel_values": torch.stack([example["features"][self._view(example)] for example in examples])}
        if "label" in examples[0]:
            batch["labels"] = torch.tensor([example["label"] for example in examples])
        return batch

    def _view(self, example: dict) -> int:
        augmented = len(example["features"]) - 1
        return 1 + self.seeds.seed_for(example["image_path"]) % augmented if augmented else 0


def _features_of(split: Dataset, table: Dataset) -> Dataset:
    """`split` (labels, paths, in its order) with the cached features of its images instead of the images."""
    row_of = {path: row for row, path in enumerate(table["image_path"])}
    split = split.with_format(None)
    features = table.select([row_of[path] for path in split["image_path"]]).select_columns(["features"])
    return concatenate_datasets([features, split.remove_columns("image")], axis=1)


def _eval_view_only(split: Dataset) -> Dataset:
    width = split.features["features"].shape[1]
    return split.map(lambda batch: {"features": [views[:1] for views in batch["features"]]}, batched=True,
                     features=Features({**split.features, "features": Array2D((1, width), "float32")}),
                     keep_in_memory=True, desc="Eval views")


def _view_seeds(view: int) -> SampleSeeds:
    seeds = SampleSeeds(VIEW_SEED)
    seeds.set_epoch(view)
    return seeds


def _content_key(images: Dataset) -> str:
    """The images' bytes (the pre-resized PNGs) or, for originals read from disk, their paths, sizes and times."""
    stored = images.cast_column("image", ImageFeature(decode=False))["image"]
    return Hasher.hash([image["bytes"] or _file_stat(image["path"]) for image in stored])


def _file_stat(path: str) -> tuple:
    stat = Path(path).stat()
    return path, stat.st_size, stat.st_mtime_ns


def _weights_key(module: torch.nn.Module) -> str:
    """The frozen tensors only: the new head's initialisation (which follows the seed) does not change the features."""
    trained = {name for name, parameter in module.named_parameters() if parameter.requires_grad}
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        if name in trained:
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _describe(transform: Callable) -> str:
    """A transform's repr without memory addresses, which change between runs."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(transform))
