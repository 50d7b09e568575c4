"""Mixup/CutMix: training batches get soft labels, evaluation batches do not, and the loss is timm's soft-target loss."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy

from sketch_train.inference import Collator
from sketch_train.mixup import Mixable, MixupCollator, SoftTargetLoss, build_mixup

CLASSES = 5


def options(**overrides) -> SimpleNamespace:
    """The training arguments build_mixup reads."""
    defaults = dict(mixup_alpha=0.0, cutmix_alpha=0.0, mixup_prob=1.0, mixup_switch_prob=0.5, label_smoothing_factor=0.0)
    return SimpleNamespace(**defaults | overrides)


def examples(count: int, training: bool) -> list[dict]:
    """What a DataLoader hands the collator: one dict per image, from the split's set_transform function."""
    generator = torch.Generator().manual_seed(0)
    batch = {"image": list(range(count)), "label": [i % CLASSES for i in range(count)]}
    to_inputs = lambda b: {"pixel_values": [torch.rand(3, 8, 8, generator=generator) for _ in b["image"]],  # noqa: E731
                           "labels": b["label"]}
    out = (Mixable(to_inputs) if training else to_inputs)(batch)
    return [{key: values[i] for key, values in out.items()} for i in range(count)]


def collator(**overrides) -> MixupCollator:
    return MixupCollator(Collator(channels_last=False), build_mixup(options(**overrides), CLASSES))


@pytest.mark.parametrize("count", [4, 5])  # timm mixes pairs; an odd last batch must work too
def test_training_batches_get_soft_labels(count):
    torch.manual_seed(0)
    plain = Collator(channels_last=False)(examples(count, training=False))
    batch = collator(mixup_alpha=1.0)(examples(count, training=True))
    assert batch["labels"].shape == (count, CLASSES)
    assert torch.allclose(batch["labels"].sum(1), torch.ones(count))
    assert (batch["labels"].max(1).values < 1).all()  # mixed, not one-hot
    assert not torch.allclose(batch["pixel_values"], plain["pixel_values"])


def test_evaluation_batches_keep_their_labels_and_images():
    plain = Collator(channels_last=False)(examples(4, training=False))
    batch = collator(mixup_alpha=1.0, cutmix_alpha=1.0)(examples(4, training=False))
    assert torch.equal(batch["labels"], torch.tensor([0, 1, 2, 3]))
    assert torch.equal(batch["pixel_values"], plain["pixel_values"])


def test_label_smoothing_moves_into_the_mixup_targets():
    batch = collator(cutmix_alpha=1.0, mixup_prob=0.0, label_smoothing_factor=0.1)(examples(4, training=True))
    off, on = 0.1 / CLASSES, 0.9 + 0.1 / CLASSES
    assert torch.allclose(batch["labels"], F.one_hot(torch.arange(4), CLASSES) * (on - off) + off)


def test_no_mixup_without_alphas():
    assert build_mixup(options(label_smoothing_factor=0.1), CLASSES) is None


def test_loss_is_the_soft_target_cross_entropy():
    torch.manual_seed(0)
    logits, targets = torch.randn(4, CLASSES), torch.softmax(torch.randn(4, CLASSES), 1)
    loss = SoftTargetLoss(CLASSES)({"logits": logits}, targets)
    assert torch.allclose(loss, SoftTargetCrossEntropy()(logits, targets))
    assert torch.allclose(loss, -(targets * logits.log_softmax(1)).sum(1).mean())


def test_hard_labels_get_the_same_smoothing_as_cross_entropy():
    logits, labels = torch.randn(6, CLASSES), torch.tensor([0, 1, 2, 3, 4, 0])
    loss = SoftTargetLoss(CLASSES, label_smoothing=0.1)({"logits": logits}, labels)
    assert torch.allclose(loss, F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_loss_is_normalised_over_the_whole_accumulated_batch():
    # Trainer counts label entries over all micro-batches of an optimizer step: 2 micro-batches of 4 soft rows.
    logits, targets = torch.randn(4, CLASSES), torch.softmax(torch.randn(4, CLASSES), 1)
    loss = SoftTargetLoss(CLASSES)({"logits": logits}, targets, num_items_in_batch=torch.tensor(2 * 4 * CLASSES))
    assert torch.allclose(loss, SoftTargetCrossEntropy()(logits, targets) / 2)
