"""The model card (README.md) of a run: Hub metadata and a readable summary, every value read from the run's files.

config.json gives the architecture, labels, preprocessing and licence; all_results.json the measured accuracy;
trainer_state.json the per-epoch history; run_summary.json, written by the run, what those files do not keep (the
base model, the data set, the hyperparameters).
"""

import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from sketch_data.atomic import atomic_write_text

from .sources import hub_model_id, label_names_of, pretrained_source

SUMMARY_FILE = "run_summary.json"
TEMPLATE = Path(__file__).with_name("model_card_template.md")
SHOWN_LABELS = 8


def run_summary(model_args, data_args, training_args) -> dict:
    """The facts of a run that only its arguments know (never the token: TrainingArguments' own fields are picked)."""
    return {
        "base_model": hub_base_model(model_args.model_name_or_path),
        "pretrained_from": pretrained_source(model_args.model_name_or_path),
        "dataset": getattr(data_args, "dataset_name", None) or (Path(data_args.train_dir).parent.name if data_args.train_dir else None),
        "data": data_location(data_args),
        "best_model_metric": training_args.metric_for_best_model if training_args.load_best_model_at_end else None,
        "hyperparameters": {
            "learning_rate": training_args.learning_rate,
            "train_batch_size": training_args.per_device_train_batch_size,
            "total_train_batch_size": training_args.effective_batch_size,
            "num_epochs": training_args.num_train_epochs,
            "optimizer": getattr(training_args.optim, "value", training_args.optim),
            "lr_scheduler_type": getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type),
            "warmup_steps": training_args.warmup_steps,
            "weight_decay": training_args.weight_decay,
            "label_smoothing_factor": training_args.label_smoothing_factor,
            "precision": training_args.precision_name,
            "seed": training_args.seed,
        },
        "recipe": recipe_options(model_args, data_args, training_args),
    }


DATA_PATHS = ("train_dir", "train_csv", "test_dir", "test_csv", "exclude_images")
SPLIT_OPTIONS = ("validation_split", "split_seed", "num_folds", "fold", "group_duplicates", "exclude_issues")


def saved_data_location(run: Path) -> dict:
    """The data paths and split a run saved in its run_summary.json (empty for runs that saved none)."""
    path = Path(run) / "run_summary.json"
    return json.loads(path.read_text()).get("data") or {} if path.is_file() else {}


def data_location(data_args) -> dict:
    """Where the run's images are and how they were split, so that later tools (scripts/report.py) need no flags.

    Absolute paths, since those tools may run from another folder; run_summary.json is never pushed to the Hub.
    """
    paths = {name: getattr(data_args, name, None) for name in DATA_PATHS}
    return {**{name: str(Path(path).resolve()) if path else None for name, path in paths.items()},
            **{name: getattr(data_args, name, None) for name in SPLIT_OPTIONS}}


def recipe_options(model_args, data_args, training_args) -> dict:
    """Model, augmentation and regularisation options that are on, so that a card says how its model was made."""
    # Imported here, not above: push_to_hub.py builds cards from a run's files, and these two import torch.
    from sketch_data.transforms import AUGMENT_OPTIONS

    from .arguments import ModelArguments

    recipe = [  # the options that make one run's recipe differ from another's; those left off are not listed
        (model_args, ("image_size", "drop_path_rate", "head", "freeze_backbone", "unfreeze_last_n_blocks", "invert")),
        (data_args, ("augment", *AUGMENT_OPTIONS, "curriculum", "tta", "num_folds", "fold", "validation_split")),
        (training_args, ("mixup_alpha", "cutmix_alpha", "ema_decay", "layer_decay")),
    ]
    off = (None, 0, [], ModelArguments.head)  # 0 also matches 0.0 and False; the default head is the architecture's own
    options = {name: getattr(source, name, None) for source, names in recipe for name in names}
    options = {name: value for name, value in options.items() if value not in off}
    if "num_folds" not in options:
        options.pop("fold", None)
    return options


def hub_base_model(model_name_or_path: str) -> str | None:
    """The Hub checkpoint a run starts from: an owner/name id, or the base model of a local run folder it continues."""
    source = Path(model_name_or_path)
    if source.is_dir():
        return _read_json(source / SUMMARY_FILE).get("base_model")
    hub_id = hub_model_id(model_name_or_path)  # timm's `hf-hub:` spelling names the same repository
    return hub_id if "/" in hub_id and not source.exists() else None


def write_model_card(output_dir: str | Path, summary: dict, model_id: str | None = None) -> Path:
    """Save the run summary beside the model, then the card built from the folder; returns the README.md path."""
    folder = Path(output_dir)
    atomic_write_text(folder / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    path = folder / "README.md"
    atomic_write_text(path, str(build_model_card(folder, model_id)))  # what ModelCard.save writes, atomically
    return path


def build_model_card(output_dir: str | Path, model_id: str | None = None) -> ModelCard:
    """The card of the run in `output_dir`; `model_id` (the Hub repo) is what its usage example loads."""
    folder = Path(output_dir)
    config = _read_json(folder / "config.json")
    results = _read_json(folder / "all_results.json")
    state = _read_json(folder / "trainer_state.json")
    summary = _read_json(folder / SUMMARY_FILE)
    model_id = model_id or str(folder)
    model_name = model_id.rstrip("/").split("/")[-1]
    pretrained_cfg = config.get("pretrained_cfg", {})
    labels = label_names_of(config)
    dataset = summary.get("dataset")

    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["image-classification", "timm", "sketch", config.get("architecture")],
        datasets=[dataset] if dataset else None,
        base_model=summary.get("base_model"),
        license=pretrained_cfg.get("license", "other"),
        metrics=["accuracy", "top_5_accuracy"],
        model_name=model_name,
        eval_results=eval_results(results, dataset or "validation set") or None,
    )
    best_metric = summary.get("best_model_metric")
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE.read_text(),
        model_id=model_id,
        model_name=model_name,
        architecture=config.get("architecture"),
        pretrained_from=summary.get("pretrained_from"),
        dataset=dataset,
        num_labels=len(labels),
        label_preview=label_preview(labels),
        results=result_rows(results),
        epochs=epoch_rows(state.get("log_history", [])),
        best_step=state.get("best_global_step") if best_metric else None,
        best_metric=best_metric,
        hyperparameters=list(summary.get("hyperparameters", {}).items())
        or [("train_batch_size", state.get("train_batch_size")), ("num_epochs", state.get("num_train_epochs"))],
        recipe=list(summary.get("recipe", {}).items()),
        preprocessing=preprocessing(pretrained_cfg),
    )


def label_preview(labels: list[str]) -> str:
    shown = ", ".join(labels[:SHOWN_LABELS])
    return f"{shown} and {len(labels) - SHOWN_LABELS} more" if len(labels) > SHOWN_LABELS else shown


def eval_results(results: dict, dataset: str) -> list[EvalResult]:
    """model-index entries for the accuracy and top-5 accuracy that the run's final evaluation measured."""
    metrics = [("accuracy", "Accuracy", "eval_accuracy"), ("top_5_accuracy", "Top-5 accuracy", "eval_top5_accuracy")]
    return [
        EvalResult(task_type="image-classification", task_name="Image Classification", dataset_type=dataset,
                   dataset_name=dataset, dataset_split="validation", metric_type=metric, metric_name=name,
                   metric_value=results[key])
        for metric, name, key in metrics if key in results
    ]


def result_rows(results: dict) -> list[tuple[str, str]]:
    names = {"eval_accuracy": "Accuracy", "eval_top5_accuracy": "Top-5 accuracy", "eval_loss": "Loss"}
    return [(name, f"{results[key]:.4f}") for key, name in names.items() if key in results]


def epoch_rows(log_history: list[dict]) -> list[list[str]]:
    """One row per evaluation during training, beside the training loss logged at the same step."""
    train_loss = {entry["step"]: entry["loss"] for entry in log_history if "loss" in entry}
    rows = []
    for entry in log_history:
        if "eval_loss" in entry:
            values = [train_loss.get(entry["step"]), entry["eval_loss"], entry.get("eval_accuracy"),
                      entry.get("eval_top5_accuracy")]
            rows.append([f"{entry['epoch']:g}", str(entry["step"]),
                         *("—" if value is None else f"{value:.4f}" for value in values)])
    return rows


def preprocessing(pretrained_cfg: dict) -> str:
    size = pretrained_cfg.get("input_size", [3, "?", "?"])
    return (f"{size[1]}×{size[2]} pixels, {pretrained_cfg.get('interpolation', 'bilinear')} resize, "
            f"crop_pct {pretrained_cfg.get('crop_pct', 1.0)}, mean {pretrained_cfg.get('mean')}, "
            f"std {pretrained_cfg.get('std')}")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
