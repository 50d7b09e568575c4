#!/usr/bin/env python
"""Fine-tune any timm model on sketches in the ImageNet-Sketch competition layout with 🤗 Trainer.

    python run_classification.py                                   # the embedded digits demo
    accelerate launch run_classification.py training_args/convnext_base_448.yaml --data_dir data
    python run_classification.py training_args/demo.yaml --num_train_epochs 1   # flags override the preset
"""

import logging
import sys

import torch
import transformers
from transformers import set_seed

from sketch_data import SketchDataError, load_sketch_dataset
from sketch_data.cache import preresize_folder, preresize_splits
from sketch_data.demo import build_digits_demo
from sketch_data.issues_file import excluded_train_images
from sketch_data.transforms import BatchTransform, eval_transform
from sketch_train.arguments import DataArguments, ModelArguments, SketchTrainingArguments
from sketch_train.checkpoints import last_complete_checkpoint
from sketch_train.curriculum import staged_train_transform
from sketch_train.disk_checks import OutputDirError, disk_full_message, ensure_writable
from sketch_train.features import image_paths, use_cached_features
from sketch_train.hub import PushError, push_run, take_over_push
from sketch_train.inference import Collator, tta_logits
from sketch_train.machine import keep_freed_memory, leave_process_group
from sketch_train.metrics import classification_metrics
from sketch_train.model import ModelSourceError, build_model, check_model_source, saved_label_names
from sketch_train.model_card import run_summary, write_model_card
from sketch_train.nan_guard import NonFiniteModelError
from sketch_train.optim import freeze_backbone
from sketch_train.presets import parse_arguments
from sketch_train.recipe import build_recipe
from sketch_train.result_files import write_eval_predictions, write_submission
from sketch_train.trainer import SketchTrainer

logger = logging.getLogger("run_classification")


def parse(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, SketchTrainingArguments]:
    """`[preset.json|preset.yaml] [--flag value ...]`; without a preset or data flags, the demo preset."""
    return parse_arguments((ModelArguments, DataArguments, SketchTrainingArguments), argv)


def main(model_args: ModelArguments, data_args: DataArguments, training_args: SketchTrainingArguments,
         extra_callbacks: list | None = None) -> dict:
    """Train, evaluate and predict as the arguments say; `extra_callbacks` join the Trainer's (e.g. a benchmark's timer)."""
    setup_logging(training_args)
    if training_args.keep_freed_memory and training_args.use_cpu:
        keep_freed_memory()
    ensure_writable(training_args.output_dir)
    push_repo = take_over_push(training_args)  # before the Trainer exists, which would push every checkpoint
    check_model_source(model_args)  # a checkpoint that cannot be had stops the run before the data work

    # 1. Data: the competition layout (train.csv, test.csv and their folders), checked, split, as datasets
    if data_args.build_demo_data:
        with training_args.main_process_first(desc="building the demo data"):
            build_digits_demo(data_args.data_dir)
    with training_args.main_process_first(desc="checking the data"):
        data = load_sketch_dataset(
            data_args.train_dir, data_args.train_csv if training_args.do_train or training_args.do_eval else None,
            data_args.test_dir, data_args.test_csv if training_args.do_predict else None,
            validation_split=data_args.validation_split, num_folds=data_args.num_folds, fold=data_args.fold,
            seed=data_args.split_seed, bad_images=data_args.bad_images, check_images=training_args.process_index == 0,
            exclude=excluded_train_images(data_args.exclude_images, data_args.exclude_issues)
            if data_args.exclude_images else None,
            group_duplicates=data_args.group_duplicates,
        )
    label_names = data.label_names or saved_label_names(model_args.model_name_or_path, model_args.cache_dir)
    check_validation_split(data, data_args, training_args)

    # 2. Model: any timm architecture or checkpoint, with a head for these labels
    set_seed(training_args.seed)  # before the model: a new head (or random init) must not differ between runs
    model, processor = build_model(model_args, label_names)
    if training_args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if model_args.freeze_backbone:
        freeze_backbone(model, model_args.unfreeze_last_n_blocks)

    # 3. Transforms: images pre-resized once, then the processor's eval transform or the sketch augmentation
    cache_folder = preresize_folder(data_args.preresize_cache, data_args.augment, processor)
    if cache_folder:
        with training_args.main_process_first(desc="pre-resizing the images"):
            data.splits = preresize_splits(data.splits, processor, cache_folder)
    to_eval = eval_transform(processor)
    to_train = staged_train_transform(processor, data_args.augmentation(), data_args.curriculum)
    # collator, loss, optimizer and every callback, as the options ask (mixup, layer decay, EMA, curriculum, ...)
    recipe = build_recipe(model, training_args, Collator(training_args.channels_last), to_train, len(label_names),
                          extra_callbacks)
    if "train" in data.splits:
        data.splits["train"].set_transform(recipe.train_batches(BatchTransform(to_train, recipe.sample_seeds)))
    if "validation" in data.splits:
        data.splits["validation"].set_transform(BatchTransform(to_eval))
    # a frozen backbone: train, validate and predict on its features, computed once (sketch_train/features.py)
    data.splits, recipe.collator = use_cached_features(model, data.splits, recipe, to_eval, to_train, model_args,
                                                       data_args, training_args, cache_folder)

    # 4. Trainer
    trainer = SketchTrainer(
        model=model,
        args=training_args,
        train_dataset=data.splits.get("train") if training_args.do_train else None,
        eval_dataset=data.splits.get("validation"),
        processing_class=processor,
        data_collator=recipe.collator,
        compute_loss_func=recipe.compute_loss_func,
        optimizers=(recipe.optimizer, None),
        compute_metrics=classification_metrics,
        callbacks=recipe.callbacks,
    )
    log_run_setup(training_args, data)
    results = {f"data_{k}": v for k, v in data.counts.items()}

    # 5. Train, resuming from the last complete checkpoint
    if training_args.do_train:
        with training_args.main_process_first(desc="finding the last complete checkpoint"):
            last_checkpoint = last_complete_checkpoint(training_args.output_dir)
        if last_checkpoint:
            logger.info("Resuming from %s", last_checkpoint)
        train_result = trainer.train(resume_from_checkpoint=last_checkpoint)
        train_result.metrics.update(recipe.nan_guard.metrics())
        recipe.nan_guard.check_final_model()  # a NaN model is never written as the result
        trainer.save_model()  # the best model when load_best_model_at_end, with config.json's pretrained_cfg
        trainer.log_metrics("train", train_result.metrics)
        trainer.save_metrics("train", {**train_result.metrics, **results})
        trainer.save_state()
        results.update(train_result.metrics)

    # 6. Evaluate: metrics, and one row per validation image for reports and ensembles
    if training_args.do_eval and "validation" in data.splits:
        with torch.inference_mode():
            output = trainer.predict(data.splits["validation"], metric_key_prefix="eval")
        trainer.log_metrics("eval", output.metrics)
        trainer.save_metrics("eval", output.metrics)
        results.update(output.metrics)
        if trainer.is_world_process_zero():
            write_eval_predictions(image_paths(data.splits["validation"]), output.label_ids, output.predictions,
                                   label_names, training_args.output_dir)

    # 7. Predict: submission.csv in test.csv's order, with optional TTA
    if training_args.do_predict:
        test = data.splits["test"]
        logits = tta_logits(trainer, test, to_eval, data_args.tta)
        if trainer.is_world_process_zero():
            path = write_submission(image_paths(test), logits, training_args.output_dir)
            logger.info("Wrote %s (%d rows)", path, len(logits))

    # 8. Model card, then the push of the final model with it
    if trainer.is_world_process_zero() and training_args.do_train:
        write_model_card(training_args.output_dir, run_summary(model_args, data_args, training_args), push_repo)
    if push_repo and trainer.is_world_process_zero():
        url = push_run(training_args.output_dir, push_repo, private=bool(training_args.hub_private_repo),
                       revision=training_args.hub_revision)
        logger.info("Pushed the model to %s", url)
    return results


def check_validation_split(data, data_args: DataArguments, training_args: SketchTrainingArguments) -> None:
    """A run that evaluates during training needs validation images: one line, not Trainer's traceback, when every
    class was too small to hold some out (after --exclude_images, say)."""
    if training_args.do_train and training_args.eval_strategy != "no" and "validation" not in data.splits:
        raise SketchDataError(
            f"{data_args.train_csv}: no image is left for validation: every class has too few images to hold some "
            f"out ({data.counts.get('rare_class_images_kept_in_train', 0)} kept in train"
            + (f", {data.counts['excluded_train_images']} excluded by --exclude_images" if data.counts.get(
                "excluded_train_images") else "") + "). Exclude fewer images, or pass --eval_strategy no "
            "--load_best_model_at_end false.")


def log_run_setup(args: SketchTrainingArguments, data) -> None:
    sizes = ", ".join(f"{name} {len(split)}" for name, split in data.splits.items())
    scaled = f" (scaled from batch {args.scale_lr_by_batch})" if args.scale_lr_by_batch else ""
    logger.info(
        "Device %s | world size %d | precision %s | channels_last %s | batch %d x %d processes x %d accumulation = %d "
        "| learning rate %g%s | %s",
        args.device, args.world_size, args.precision_name, args.channels_last, args.per_device_train_batch_size,
        args.world_size, args.gradient_accumulation_steps, args.effective_batch_size, args.learning_rate, scaled, sizes,
    )


def setup_logging(args: SketchTrainingArguments) -> None:
    logging.basicConfig(format="%(asctime)s | %(levelname)-7s | %(name)s | %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    # Our own messages are few and worth reading on the main process; transformers keeps its --log_level.
    ours = logging.INFO if args.process_index == 0 else logging.WARNING
    for name in ("run_classification", "sketch_data", "sketch_train"):
        logging.getLogger(name).setLevel(ours)
    transformers.utils.logging.set_verbosity(args.get_process_log_level())


def cli(argv: list[str] | None = None, keep_process_group: bool = False) -> int:
    """Run, turning problems in the user's input into one line on stderr and exit code 2; then leave the process
    group, unless the caller runs more in this process (scripts/train_kfold.py)."""
    try:
        return _run(argv)
    finally:
        if not keep_process_group:
            leave_process_group()


def _run(argv: list[str] | None) -> int:
    try:
        arguments = parse(argv)
    except (ValueError, FileNotFoundError) as error:  # the dataclasses' own checks of the options
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        main(*arguments)
    except (SketchDataError, ModelSourceError, OutputDirError, NonFiniteModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PushError as error:  # the run itself is complete and saved; only the push to the Hub failed
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        message = disk_full_message(error, arguments[2].output_dir)
        if message is None:
            raise  # a bug or an unexpected fault: the traceback is the useful report
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
