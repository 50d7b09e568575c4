"""End to end: train -> save -> pipeline(), the submission, resume, and fine-tuning a saved checkpoint."""

import json
import shutil

import datasets
import numpy as np
import pandas as pd
import torch
from conftest import run_in_this_process, tiny_run_flags
from PIL import Image
from transformers import (
    AutoModelForImageClassification,
    TimmWrapperImageProcessor,
    pipeline,
)

from sketch_data.transforms import eval_transform


def test_saved_run_loads_in_pipeline_with_readable_labels(tiny_run, quickdraw_mini):
    image = Image.open(quickdraw_mini / "test" / "0.JPEG")
    classifier = pipeline("image-classification", model=str(tiny_run))
    top = classifier(image, top_k=10)
    names = sorted(pd.read_csv(quickdraw_mini / "train.csv").class_name.unique())
    assert sorted(p["label"] for p in top) == names
    model = AutoModelForImageClassification.from_pretrained(tiny_run).eval()
    processor = TimmWrapperImageProcessor(pretrained_cfg=model.config.pretrained_cfg)
    with torch.inference_mode():
        logits = model(eval_transform(processor)(image)[None]).logits[0]
    assert top[0]["label"] == names[int(logits.argmax())]


def test_submission_matches_test_csv_and_logits(tiny_run, quickdraw_mini):
    submission = pd.read_csv(tiny_run / "submission.csv")
    test = pd.read_csv(quickdraw_mini / "test.csv")
    assert list(submission.columns) == ["ID", "image_path", "target"]
    assert submission.ID.tolist() == list(range(len(test)))
    assert submission.image_path.tolist() == test.image_path.tolist()
    logits = np.load(tiny_run / "test_logits.npy")
    assert logits.shape == (len(test), 10)
    assert submission.target.tolist() == logits.argmax(1).tolist()
    assert submission.target.between(0, 9).all()


def test_eval_predictions_cover_the_validation_split_once(tiny_run):
    predictions = pd.read_csv(tiny_run / "eval_predictions.csv")
    assert len(predictions) == 16 and predictions.image_path.is_unique  # 20% of 80, stratified
    results = json.loads((tiny_run / "all_results.json").read_text())
    assert results["eval_accuracy"] == (predictions.label == predictions.prediction).mean()
    assert 0 <= results["eval_accuracy"] <= results["eval_top5_accuracy"] <= 1


def test_rerun_resumes_from_the_last_checkpoint(tmp_path, tiny_run, quickdraw_mini):
    """The shared run, as a run stopped after its first epoch leaves it: only checkpoint-4 and no final files."""
    shutil.copytree(tiny_run / "checkpoint-4", tmp_path / "checkpoint-4")
    code, log = run_in_this_process(tiny_run_flags(quickdraw_mini, tmp_path))
    assert code == 0, log[-2000:]
    assert f"Resuming from {tmp_path / 'checkpoint-4'}" in log
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 8  # 64 train images / batch 16 = 4 steps per epoch
    assert [e["epoch"] for e in state["log_history"] if "eval_accuracy" in e] == [1.0, 2.0]


def test_fine_tunes_a_saved_checkpoint_with_a_different_number_of_classes(tmp_path, tiny_run, quickdraw_mini):
    csv = pd.read_csv(quickdraw_mini / "train.csv")
    five = csv[csv.target < 5]
    five.to_csv(tmp_path / "train.csv", index=False)
    flags = tiny_run_flags(quickdraw_mini, tmp_path / "run", "--train_csv", str(tmp_path / "train.csv"),
                           "--model_name_or_path", str(tiny_run), "--num_train_epochs", "1", "--do_predict", "false")
    code, log = run_in_this_process(flags)
    assert code == 0, log[-2000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["num_classes"] == 5
    assert config["label_names"] == sorted(five.class_name.unique())
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32]


def test_training_on_real_sketches_lowers_the_loss(tmp_path, quickdraw_mini):
    flags = tiny_run_flags(quickdraw_mini, tmp_path, "--num_train_epochs", "8", "--do_predict", "false",
                           "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
                           "--per_device_train_batch_size", "8", "--learning_rate", "0.005",
                           "--image_mean", "1", "1", "1", "--image_std", "0.5", "0.5", "0.5")
    code, log = run_in_this_process(flags)
    assert code == 0, log[-2000:]
    losses = [e["loss"] for e in json.loads((tmp_path / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 8
    assert np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2]), losses  # measured: 2.25 -> 0.80


def test_default_runs_train_on_images_preresized_once_in_the_datasets_cache(tmp_path, quickdraw_mini, monkeypatch,
                                                                            capfd):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets"))  # what HF_DATASETS_CACHE sets
    flags = ["--num_train_epochs", "1", "--do_predict", "false", "--eval_strategy", "no", "--save_strategy", "no",
             "--load_best_model_at_end", "false"]
    code, _ = run_in_this_process(tiny_run_flags(quickdraw_mini, tmp_path / "first", *flags))
    assert code == 0
    built = sorted(p.name for p in (tmp_path / "datasets" / "sketch_preresized").glob("*.arrow"))  # not the lock
    assert len(built) == 1 and "Pre-resizing" in capfd.readouterr().err  # train.csv's images, with a progress bar
    code, log = run_in_this_process(tiny_run_flags(quickdraw_mini, tmp_path / "second", *flags))
    assert code == 0
    assert log.count("Reusing pre-resized images") == 1
    assert sorted(p.name for p in (tmp_path / "datasets" / "sketch_preresized").glob("*.arrow")) == built
