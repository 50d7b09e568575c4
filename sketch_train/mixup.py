"""Mixup / CutMix of training batches (timm's `Mixup`), and the soft-target loss that mixed labels need.

Trainer uses one collator for training, evaluation and prediction, and its DataLoader workers hold their own
copies of it, so the collator cannot be told which phase it is in. Instead the training split's transform
marks its examples (`Mixable`), and only marked batches are mixed.
"""

import hashlib

import torch
from timm.data import Mixup
from timm.data.mixup import mixup_target
from timm.loss import SoftTargetCrossEntropy

from sketch_data.transforms import SampleSeeds, seeded_rng

MIX = "mix"  # the key a training example carries


def build_mixup(args, num_classes: int) -> Mixup | None:
    """timm's Mixup from the run's options, or None when both mixup and CutMix are off.

    Label smoothing moves into Mixup's targets (Trainer's own label smoother does not see soft labels).
    """
    if not (args.mixup_alpha or args.cutmix_alpha):
        return None
    return Mixup(mixup_alpha=args.mixup_alpha, cutmix_alpha=args.cutmix_alpha, prob=args.mixup_prob,
                 switch_prob=args.mixup_switch_prob, label_smoothing=args.label_smoothing_factor,
                 num_classes=num_classes)


class Mixable:
    """Wrap a `set_transform` function so that its examples are mixed by `MixupCollator` (a class: picklable).

    With `seeds`, each example carries its seed (not just True), and the batch's mix is drawn from their hash:
    the same after a resume as without one (see `sketch_data.transforms.SampleSeeds`).
    """

    def __init__(self, batch_fn, seeds: SampleSeeds | None = None):
        self.batch_fn, self.seeds = batch_fn, seeds

    def __call__(self, batch: dict) -> dict:
        out = self.batch_fn(batch)
        if self.seeds is None:
            out[MIX] = [True] * len(out["pixel_values"])
        else:
            out[MIX] = [self.seeds.seed_for(key) for key in batch["image_path"]]
        return out


class MixupCollator:
    """Collate with `collate`, then mix the batch if its examples are marked `Mixable` (training only)."""

    def __init__(self, collate, mixup: Mixup):
        self.collate, self.mixup = collate, mixup

    def __call__(self, examples: list[dict]) -> dict:
        marked = [example.pop(MIX, False) for example in examples]
        batch = self.collate(examples)
        if all(mark is not False for mark in marked) and "labels" in batch:
            if any(mark is True for mark in marked):
                batch["pixel_values"], batch["labels"] = self.mix(batch["pixel_values"], batch["labels"])
            else:
                with seeded_rng(hash_seeds(marked), numpy=True):  # timm's Mixup draws from numpy
                    batch["pixel_values"], batch["labels"] = self.mix(batch["pixel_values"], batch["labels"])
        return batch

    def mix(self, pixels: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        odd = len(pixels) % 2
        if odd:  # timm mixes pairs (i, n-1-i) and wants an even batch: borrow a copy of the last image
            pixels, labels = torch.cat([pixels, pixels[-1:]]), torch.cat([labels, labels[-1:]])
        pixels, targets = self.mixup(pixels, labels)
        return (pixels[:-1], targets[:-1]) if odd else (pixels, targets)


def hash_seeds(seeds: list[int]) -> int:
    return int.from_bytes(hashlib.blake2b(repr(seeds).encode(), digest_size=8).digest(), "little")


class SoftTargetLoss:
    """Trainer's `compute_loss_func`: timm's SoftTargetCrossEntropy; hard labels (evaluation) get the same smoothing.

    Trainer passes `num_items_in_batch`, the count of label entries over all micro-batches of an optimizer step
    (and all processes), and expects the loss summed over this micro-batch divided by it. A soft-label row has
    `num_classes` entries, so `loss x labels.numel() / num_items_in_batch` is exact for soft and hard labels.
    """

    def __init__(self, num_classes: int, label_smoothing: float = 0.0):
        self.num_classes, self.label_smoothing = num_classes, label_smoothing
        self.loss = SoftTargetCrossEntropy()

    def __call__(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        logits = outputs["logits"].float()
        targets = labels if labels.ndim == 2 else mixup_target(labels, self.num_classes, 1.0, self.label_smoothing)
        loss = self.loss(logits, targets.to(logits.dtype))
        if num_items_in_batch is None:
            return loss
        return loss * labels.numel() / num_items_in_batch
