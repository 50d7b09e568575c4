"""The fast path (channels_last + bf16 autocast, as run_classification sets it up) gives the naive path's loss.

Both paths run the same trained model on the same batch of real sketches through Trainer.predict, which
applies the run's precision (accelerate's autocast) and the Collator's layout, as --do_eval/--do_predict do.
"""

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForImageClassification,
    TimmWrapperImageProcessor,
    Trainer,
)

from sketch_data import load_sketch_dataset
from sketch_data.transforms import BatchTransform, eval_transform
from sketch_train.arguments import SketchTrainingArguments
from sketch_train.inference import Collator

BF16_TOLERANCE = 0.02  # bf16 keeps 8 bits of mantissa (~0.4% per op); a few percent after a whole network


@pytest.fixture(scope="module")
def batch(tiny_run, quickdraw_mini):
    """The 16 validation sketches of quickdraw-mini, as the eval transform of the trained tiny run sees them."""
    data = load_sketch_dataset(quickdraw_mini / "train", quickdraw_mini / "train.csv", validation_split=0.2)
    validation = data.splits["validation"]
    validation.set_transform(BatchTransform(eval_transform(TimmWrapperImageProcessor.from_pretrained(tiny_run))))
    return validation


def predict(model_dir, dataset, tmp_path, precision: str, channels_last: bool) -> dict:
    """Loss and logits of one Trainer.predict pass, plus what the model saw: input layout and compute dtype."""
    args = SketchTrainingArguments(
        output_dir=str(tmp_path / f"{precision}-{channels_last}"), precision=precision, channels_last=channels_last,
        per_device_eval_batch_size=len(dataset), dataloader_num_workers=0, remove_unused_columns=False,
        report_to="none",
    )
    model = AutoModelForImageClassification.from_pretrained(model_dir)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    seen = {}
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda module, inputs, output: seen.update(
        channels_last=inputs[0].is_contiguous(memory_format=torch.channels_last),
        dtype=output.dtype))
    trainer = Trainer(model=model, args=args, data_collator=Collator(channels_last))
    with torch.inference_mode():
        output = trainer.predict(dataset)
    return {"loss": output.metrics["test_loss"], "logits": output.predictions, **seen}


def test_fast_path_gives_the_naive_loss_within_bf16_tolerance(tiny_run, batch, tmp_path):
    naive = predict(tiny_run, batch, tmp_path, "fp32", channels_last=False)
    fast = predict(tiny_run, batch, tmp_path, "bf16", channels_last=True)
    # Each path really ran as named: otherwise the comparison below would prove nothing.
    assert (naive["channels_last"], naive["dtype"]) == (False, torch.float32)
    assert (fast["channels_last"], fast["dtype"]) == (True, torch.bfloat16)
    assert fast["loss"] == pytest.approx(naive["loss"], rel=BF16_TOLERANCE)
    scale = np.abs(naive["logits"]).max()
    assert np.abs(fast["logits"] - naive["logits"]).max() <= BF16_TOLERANCE * scale
    assert (fast["logits"].argmax(1) == naive["logits"].argmax(1)).mean() >= 0.9


def test_channels_last_alone_changes_nothing_in_fp32(tiny_run, batch, tmp_path):
    naive = predict(tiny_run, batch, tmp_path, "fp32", channels_last=False)
    nhwc = predict(tiny_run, batch, tmp_path, "fp32", channels_last=True)
    assert nhwc["channels_last"] and nhwc["dtype"] == torch.float32
    assert nhwc["loss"] == pytest.approx(naive["loss"], rel=1e-5)
    np.testing.assert_allclose(nhwc["logits"], naive["logits"], rtol=1e-4, atol=1e-5)
