"""The competition options through run_classification: all of them in one tiny run, and test-time augmentation."""

import json

import numpy as np
import pandas as pd
import torch
from conftest import run_in_this_process, tiny_run_flags
from transformers import (
    AutoModelForImageClassification,
    TimmWrapperImageProcessor,
    Trainer,
    pipeline,
)

from sketch_data import load_sketch_dataset
from sketch_data.transforms import eval_transform
from sketch_train.arguments import SketchTrainingArguments
from sketch_train.inference import Collator, tta_logits


def test_every_competition_option_in_one_run(tmp_path, quickdraw_mini):
    code, log = run_in_this_process(tiny_run_flags(
        quickdraw_mini, tmp_path,
        "--mixup_alpha", "0.8", "--cutmix_alpha", "1.0", "--label_smoothing_factor", "0.1",
        "--ema_decay", "0.99", "--layer_decay", "0.8", "--augment", "sketch_autoaugment",
        "--curriculum", '[{"epoch": 1, "vflip": 0.5, "rotate_degrees": 15}]',
        "--head", "mlp", "--head_hidden_size", "16", "--freeze_backbone", "true", "--unfreeze_last_n_blocks", "3",
        "--tta", "hflip", "vflip",
    ))
    assert code == 0, log[-3000:]
    assert "Frozen backbone: training" in log and "augmentation stage 2 of 2" in log
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    assert len([e for e in history if "eval_ema_chosen" in e]) == 2  # the EMA was evaluated at both epochs
    assert all(np.isfinite(e["loss"]) for e in history if "loss" in e)
    assert json.loads((tmp_path / "config.json").read_text())["model_args"]["head_hidden_size"] == 16
    test = pd.read_csv(quickdraw_mini / "test.csv")
    assert pd.read_csv(tmp_path / "submission.csv").image_path.tolist() == test.image_path.tolist()
    labels = {p["label"] for p in pipeline("image-classification", model=str(tmp_path))(
        str(quickdraw_mini / "test" / test.image_path[0]), top_k=10)}
    assert len(labels) == 10  # the MLP head reloads with every class


def test_tta_logits_are_the_mean_of_the_plain_and_flipped_views(tiny_run, quickdraw_mini, tmp_path):
    model = AutoModelForImageClassification.from_pretrained(tiny_run).eval()
    to_eval = eval_transform(TimmWrapperImageProcessor.from_pretrained(tiny_run))
    test = load_sketch_dataset(test_dir=quickdraw_mini / "test", test_csv=quickdraw_mini / "test.csv").splits["test"]
    args = SketchTrainingArguments(output_dir=str(tmp_path), precision="fp32", per_device_eval_batch_size=8,
                                   dataloader_num_workers=0, remove_unused_columns=False, report_to="none")
    trainer = Trainer(model=model, args=args, data_collator=Collator(channels_last=False))
    logits = tta_logits(trainer, test, to_eval, ["hflip", "vflip"])
    images = torch.stack([to_eval(image) for image in test.with_format(None)["image"]])
    with torch.inference_mode():
        views = [model(images).logits, model(images.flip(-1)).logits, model(images.flip(-2)).logits]
    assert np.allclose(logits, torch.stack(views).mean(0).numpy(), atol=1e-5)
    assert not np.allclose(logits, views[0].numpy(), atol=1e-3)  # the flips changed something
