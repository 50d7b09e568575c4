"""Batched prediction with Trainer, shared by `--do_eval`/`--do_predict` and `scripts/predict.py`.

Both go through `Trainer.predict` with the run's precision (accelerate's autocast) and the collator's memory
layout, so a folder predicted by the script gets the logits that `--do_predict` gives for the same images.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from sketch_data.dataset import load_image_files
from sketch_data.transforms import BatchTransform, eval_transform, tta_transforms

from .arguments import ModelArguments
from .features import FeatureTensors
from .model import build_model, saved_label_names
from .trainer import SketchTrainer


class Collator:
    """Stack a batch, in channels_last layout when asked (the fast path for convolutions)."""

    def __init__(self, channels_last: bool):
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, examples: list[dict]) -> dict:
        images = [e["pixel_values"] for e in examples]
        # One copy into the final layout; a copy from images that are channels last already is a plain memcpy.
        pixel_values = torch.empty((len(images), *images[0].shape), dtype=images[0].dtype,
                                   memory_format=self.memory_format)
        batch = {"pixel_values": torch.stack(images, out=pixel_values)}
        if "labels" in examples[0]:
            batch["labels"] = torch.tensor([e["labels"] for e in examples])
        return batch


def tta_logits(trainer: Trainer, dataset, transform, tta: list[str]) -> np.ndarray:
    """Logits of the plain view, averaged with flipped views for test-time augmentation.

    `dataset` holds images, or the frozen backbone's cached features of the same views (sketch_train/features.py).
    """
    total = 0
    for view in _views(dataset, transform, tta):
        with torch.inference_mode():  # cheaper than Trainer's no_grad; same batches, precision and layout
            total = total + trainer.predict(view, metric_key_prefix="test").predictions
    return total / (len(tta) + 1)


def _views(dataset, transform, tta: list[str]) -> Iterator:
    if isinstance(dataset, FeatureTensors):
        if dataset.views != len(tta) + 1:
            raise ValueError(f"the cached test features hold {dataset.views} view(s), not the eval view and {tta}")
        yield from (dataset.view(index) for index in range(dataset.views))
        return
    for view in tta_transforms(transform, tta):
        dataset.set_transform(BatchTransform(view))
        yield dataset


@dataclass
class FilePredictions:
    """Logits for image files, with their names and the model's labels."""

    image_paths: list[str]
    logits: np.ndarray
    label_names: list[str]
    skipped: int  # unreadable images left out with bad_images="skip"


def predict_files(model_name_or_path: str, inputs: list[str], args: TrainingArguments, tta: list[str] = (),
                  bad_images: str = "error", cache_dir: str | None = None,
                  callbacks: list[TrainerCallback] = ()) -> FilePredictions:
    """Predict folders, files or glob patterns of images with a saved model (run folder or Hub id), no CSV needed.

    `args` are the run arguments --do_predict would use (precision, channels_last, eval batch size, workers).
    """
    dataset, counts = load_image_files(inputs, bad_images)
    label_names = saved_label_names(model_name_or_path, cache_dir)
    model, processor = build_model(ModelArguments(model_name_or_path=model_name_or_path, cache_dir=cache_dir),
                                   label_names)
    channels_last = getattr(args, "channels_last", False)  # a SketchTrainingArguments option
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    trainer = SketchTrainer(model=model, args=args, data_collator=Collator(channels_last),
                            processing_class=processor, callbacks=list(callbacks))
    logits = tta_logits(trainer, dataset, eval_transform(processor), list(tta))
    return FilePredictions(dataset.with_format(None)["image_path"], logits, label_names, counts["bad_images_skipped"])
