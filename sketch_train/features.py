"""Frozen-backbone feature cache: the backbone runs once per image and view, the head trains on its pooled output.

With `--freeze_backbone true` and no unfrozen blocks, every epoch would run the same frozen backbone over the same
images again. Instead, the pooled features (a CNN's spatially averaged map; a ViT's or EVA's average or class
token, after its frozen norm) are computed once per image and view, through a DataLoader with the run's data
workers, in eval mode under inference_mode, and kept in the pre-resize cache's folder as one `.npy` file per
view (images x C floats, rows in image_path order):
- train.csv's images: the eval view and `--feature_cache_views` K augmented views (seeded per image, not per run);
- test.csv's images, with --do_predict: the eval view and each `--tta` flip, so that every fold predicts the test
  set, with TTA, from its head alone.
The training, validation and test splits then hold those features, and the *same* model trains and predicts on
them with the same Trainer: its `forward_features` takes a batch of pooled features (2-D) as already computed and
runs the full backbone on images (4-D), so checkpoints, the saved model (backbone + head), `pipeline()` and the
model card are those of an uncached run. First the head is checked to give the same logits from the pooled
features as from the whole backbone output; where it does not (an attention-pool head reads every token), the run
trains from images and says why.

Each file is keyed by the images' files (path, size, modification time: not their bytes), the frozen weights, the
view's transform and the precision, not by the split: every fold of a k-fold run (the same images, split
differently), every seed and every rerun reuse it, and a new view (another K, another TTA flip) computes only
itself. Under several processes the main one computes the files first; the others read them.
"""

import hashlib
import logging
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import timm
import torch
from datasets import Dataset, DatasetDict, concatenate_datasets
from timm.models.vision_transformer import global_pool_nlc
from tqdm.auto import tqdm

from sketch_data.atomic import atomic_save_npy, remove_stale_temporaries
from sketch_data.cache import CACHE_VERSION, preresize_folder, preresize_splits, source_files
from sketch_data.dataset import LABELLED
from sketch_data.keys import files_fingerprint, key_of
from sketch_data.transforms import BatchTransform, SampleSeeds, eval_transform, tta_transforms

from .model import build_model
from .optim import freeze_backbone

logger = logging.getLogger(__name__)
FEATURE_CACHE_VERSION = 2  # bump when what is stored changes, so old files are not reused
VIEW_SEED = 0  # the augmented views do not depend on the training seed, so that seeds share one cache
NLC_POOLS = ("avg", "token", "max", "avgmax")  # the token poolings global_pool_nlc does: one vector per image


@dataclass
class View:
    """One way of turning an image into model inputs, and the words that identify it in a cache key."""

    key: str
    transform: BatchTransform


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
    labelled_images = sum(len(splits[name]) for name in labelled)
    reason = feature_cache_reason(model_args, data_args, training_args)
    if reason is None:
        model.to(training_args.device)  # where Trainer will put it: a GPU computes the features too
        reason = pooled_head_mismatch(model.timm_model, model.config.pretrained_cfg["input_size"][-1],
                                      labelled_images, model_args.feature_cache_views + 1)
    if reason:
        logger.info("Training from images, without the feature cache: %s.", reason)
        return splits, recipe.collator
    store = FeatureStore(model.timm_model, cache_folder, training_args)
    train_views = training_views(to_eval, to_train, model_args.feature_cache_views)
    cached = DatasetDict(splits)
    for name, features in store.features_of({name: splits[name] for name in labelled}, train_views).items():
        cached[name] = features if name == "train" else features.view(0)
    if "test" in splits and training_args.do_predict:  # every fold and TTA view predicts from these
        cached["test"] = store.features_of({"test": splits["test"]}, tta_views(to_eval, data_args.tta))["test"]
    accept_pooled_features(model.timm_model)
    logger.info("Training the head on cached backbone features (%s): %d images x %d view(s) x %d floats%s",
                "pooled tokens" if _outputs_tokens(model.timm_model) else "pooled feature map",
                labelled_images, len(train_views), model.timm_model.num_features,
                f"; test.csv's {len(splits['test'])} images x {len(data_args.tta) + 1} view(s) too"
                if "test" in cached and isinstance(cached["test"], FeatureTensors) else "")
    return cached, FeatureCollator(recipe.sample_seeds, recipe.collator)


def backbone_features(model_args, splits: dict[str, Dataset], training_args) -> dict[str, np.ndarray]:
    """Each split's pooled eval-view features (images, C) from the frozen pretrained backbone, through the same
    pre-resize and feature caches as a frozen-head run of this model, size and precision (scripts/doctor.py)."""
    model, processor = build_model(model_args, ["any"])  # the head is not used: only the backbone's output is
    freeze_backbone(model, 0)  # as a frozen run does, so that the features' key (its frozen tensors) is the same
    model.to(training_args.device)
    folder = preresize_folder("auto", "sketch", processor)
    if folder:
        splits = preresize_splits(DatasetDict(splits), processor, folder)
    to_eval = eval_transform(processor)
    features = FeatureStore(model.timm_model, folder, training_args).features_of(splits, training_views(to_eval, None, 0))
    return {name: split.features[:, 0].numpy() for name, split in features.items()}


def training_views(to_eval: Callable, to_train: Callable, augmented: int) -> list[View]:
    """The eval view, then `augmented` views of the training transform, each seeded per image by the view alone."""
    return [View(f"eval {_describe(to_eval)}", BatchTransform(to_eval))] + [
        View(f"train {_describe(to_train)} seed {VIEW_SEED} view {view}", BatchTransform(to_train, _view_seeds(view)))
        for view in range(augmented)]


def tta_views(to_eval: Callable, tta: list[str]) -> list[View]:
    """The eval view, then each flip of `--tta`, in the order tta_logits averages them."""
    return [View(f"{name} {_describe(to_eval)}", BatchTransform(view))
            for name, view in zip(["eval", *tta], tta_transforms(to_eval, tta))]


class FeatureStore:
    """Pooled features of images, one `.npy` file per set of images and view, computed where missing."""

    def __init__(self, timm_model, folder: Path | None, training_args):
        """`folder`: the pre-resize cache's, whose images the features are then computed from; None: the originals."""
        self.timm_model = timm_model
        self.folder = Path(folder or Path(datasets.config.HF_DATASETS_CACHE) / "sketch_preresized")
        # Pre-resized images give the eval view's exact tensors, but timm's random crops (--augment timm) would
        # see other pixels: the key tells the two inputs apart.
        self.inputs = f"pre-resized v{CACHE_VERSION}" if folder else "original files"
        self.autocast = torch.float16 if training_args.fp16 else torch.bfloat16 if training_args.bf16 else None
        self.batch_size = training_args.per_device_eval_batch_size
        self.workers = training_args.dataloader_num_workers
        self.main_process_first = training_args.main_process_first
        self.is_local_main = getattr(training_args, "local_process_index", 0) == 0
        self.weights = _weights_key(timm_model)

    def features_of(self, splits: dict[str, Dataset], views: list[View]) -> dict[str, "FeatureTensors"]:
        """Each split's features (images, views, C), in its own row order, with its labels and paths."""
        splits = {name: split.with_format(None) for name, split in splits.items()}  # not the training transforms
        images = concatenate_datasets(list(splits.values())).select_columns(["image", "image_path"])
        paths = images["image_path"][:]
        images = images.select(sorted(range(len(paths)), key=paths.__getitem__))  # one order for every split
        paths = images["image_path"][:]
        images_key = key_of(list(zip(paths, files_fingerprint(source_files(images)))))
        files = {view.key: self.folder / f"features-{self._key(images_key, view)}.npy" for view in views}
        with self.main_process_first(desc="computing the backbone features"):
            arrays = {key: _readable_features(file, len(images)) for key, file in files.items()}
            missing = [view for view in views if arrays[view.key] is None]
            if missing:
                arrays |= self._compute(images, missing, files)
                if not self.is_local_main:  # it went first and should have left them: the work is done twice
                    logger.warning("This process computed %d view(s) of backbone features itself: the main process "
                                   "did not leave them in %s.", len(missing), self.folder)
                logger.info("Computed %d of %d view(s) of the backbone features of %d images, into %s",
                            len(missing), len(views), len(images), self.folder)
            else:
                logger.info("Reusing cached backbone features of %d images x %d view(s) from %s", len(images),
                            len(views), self.folder)
        row_of = {path: row for row, path in enumerate(paths)}
        features = {}
        for name, split in splits.items():
            rows = [row_of[path] for path in split["image_path"][:]]
            per_view = [arrays[view.key][rows] for view in views]  # read from the files into memory
            features[name] = FeatureTensors(torch.from_numpy(np.stack(per_view, axis=1)),
                                            split.remove_columns("image")[:])
        return features

    def _key(self, images_key: str, view: View) -> str:
        return key_of(FEATURE_CACHE_VERSION, timm.__version__, images_key, self.inputs, self.weights, view.key,
                      str(self.autocast))

    def _compute(self, images: Dataset, views: list[View], files: dict[str, Path]) -> dict[str, np.ndarray]:
        """Decode each image once, make every missing view of it, and run the backbone over them in batches."""
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.folder)  # what writers killed before their rename left
        # batch x views images per batch, per worker and prefetch: as many as an eval loader's batch holds
        loader = torch.utils.data.DataLoader(images.with_transform(_AllViews([view.transform for view in views])),
                                             batch_size=max(1, self.batch_size // len(views)),
                                             num_workers=self.workers, collate_fn=_stack_views)
        width = self.timm_model.num_features
        arrays = {view.key: np.empty((len(images), width), np.float32) for view in views}
        was_training = self.timm_model.training
        self.timm_model.eval()  # BatchNorm statistics and dropout as in the frozen training (see optim.freeze_backbone)
        try:
            start = 0
            for pixels in tqdm(loader, desc=f"Computing backbone features of {len(images)} images x {len(views)} "
                                            "view(s)", unit="batch"):
                for index, view in enumerate(views):
                    arrays[view.key][start:start + len(pixels)] = pooled_features(self.timm_model, pixels[:, index],
                                                                                  self.autocast)
                start += len(pixels)
        finally:
            self.timm_model.train(was_training)
        for view in views:
            atomic_save_npy(files[view.key], arrays[view.key])
        return arrays


class _AllViews:
    """A batch of images -> each image's views stacked (views, 3, H, W): decoded once, transformed per view."""

    def __init__(self, transforms: list[BatchTransform]):
        self.transforms = transforms

    def __call__(self, batch: dict) -> dict:
        views = [transform(batch)["pixel_values"] for transform in self.transforms]
        return {"views": [torch.stack(per_image) for per_image in zip(*views)]}


def _stack_views(examples: list[dict]) -> torch.Tensor:
    return torch.stack([example["views"] for example in examples])


def _readable_features(file: Path, images: int) -> np.ndarray | None:
    """The cached array, or None where there is none yet or it does not read whole (then it is computed again)."""
    if not file.is_file():
        return None
    try:
        array = np.load(file, mmap_mode="r")
    except (ValueError, OSError) as error:
        logger.warning("Computing %s again: it does not read (%s).", file, error)
        return None
    if array.ndim == 2 and len(array) == images:
        return array
    logger.warning("Computing %s again: it holds %s floats, not one row per image (%d).", file, array.shape, images)
    return None


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
    """A split's cached features in memory, one tensor (images, views, C), with its other columns (labels, paths).

    Trainer's loader reads every example every epoch; decoding an Arrow row costs ~0.1 ms, more than the linear
    head's whole step per image, so the examples are indexed from memory instead (~4-8 KB per image and view).
    """

    def __init__(self, features: torch.Tensor, columns: dict[str, list]):
        self.features, self.columns = features, columns

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, row: int) -> dict:
        return {"features": self.features[row]} | {name: values[row] for name, values in self.columns.items()}

    @property
    def views(self) -> int:
        return self.features.shape[1]

    def view(self, index: int) -> "FeatureTensors":
        """The same images with one view only: validation's eval view, or one TTA view of the test images."""
        return FeatureTensors(self.features[:, index:index + 1], self.columns)


def image_paths(split) -> list[str]:
    """`image_path` of each row, of a split of images or of cached features."""
    if isinstance(split, FeatureTensors):
        return list(split.columns["image_path"])
    return split.with_format(None)["image_path"][:]


class FeatureCollator:
    """Batches of cached features. A training example holds the eval view and K augmented ones: one augmented view
    is drawn per image and epoch from the run's per-example seeds (so a resumed run draws what an uninterrupted one
    does); a validation or test example (or any, with K = 0) holds one view. Images (where nothing is cached, e.g.
    predictions without training) go to the run's own collator."""

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


def _view_seeds(view: int) -> SampleSeeds:
    seeds = SampleSeeds(VIEW_SEED)
    seeds.set_epoch(view)
    return seeds


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
