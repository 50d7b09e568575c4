"""sketch_train/recipe.py: every callback, the collator, loss and optimizer come from the options, in one place."""

import torch
from transformers import EarlyStoppingCallback, TrainerCallback

from sketch_train.arguments import ModelArguments, SketchTrainingArguments
from sketch_train.curriculum import EpochCallback
from sketch_train.ema import EmaCallback
from sketch_train.mixup import MixupCollator, SoftTargetLoss
from sketch_train.model import build_model
from sketch_train.nan_guard import NanGuard
from sketch_train.recipe import build_recipe
from sketch_train.trainer import SketchTrainer

LABELS = ["cat", "dog", "fish"]


def recipe_for(tmp_path, extra=None, **options):
    model, _ = build_model(ModelArguments(model_name_or_path="test_convnext"), LABELS)
    args = SketchTrainingArguments(output_dir=str(tmp_path), use_cpu=True, **options)
    collate = object()  # the run's own collator, passed through or wrapped
    return model, args, collate, build_recipe(model, args, collate, lambda image: image, len(LABELS), extra)


def test_with_every_option_off_it_is_trainers_plain_setup_plus_seeds_and_the_nan_guard(tmp_path):
    _, _, collate, recipe = recipe_for(tmp_path)
    assert [type(callback) for callback in recipe.callbacks] == [EpochCallback, NanGuard]
    assert recipe.nan_guard is recipe.callbacks[1]
    assert recipe.collator is collate and recipe.compute_loss_func is None and recipe.optimizer is None


def test_each_option_adds_its_part_and_extra_callbacks_come_last(tmp_path):
    timer = TrainerCallback()
    _, _, collate, recipe = recipe_for(tmp_path, [timer], ema_decay=0.99, early_stopping_patience=2,
                                       mixup_alpha=0.2, layer_decay=0.8, eval_strategy="epoch",
                                       save_strategy="epoch", load_best_model_at_end=True)
    assert [type(callback) for callback in recipe.callbacks] == [
        EpochCallback, NanGuard, EmaCallback, EarlyStoppingCallback, TrainerCallback]
    assert recipe.callbacks[-1] is timer
    assert isinstance(recipe.collator, MixupCollator) and isinstance(recipe.compute_loss_func, SoftTargetLoss)
    rates = sorted({group["lr"] for group in recipe.optimizer.param_groups})
    assert len(rates) > 2 and rates[-1] == recipe.optimizer.param_groups[0]["lr"]  # the head first, at the base rate


def test_the_trainer_binds_the_callbacks_that_call_back_into_it(tmp_path):
    model, args, _, recipe = recipe_for(tmp_path, ema_decay=0.99)
    trainer = SketchTrainer(model=model, args=args, callbacks=recipe.callbacks,
                            data_collator=lambda rows: {"pixel_values": torch.zeros(1, 3, 32, 32)})
    ema = next(callback for callback in recipe.callbacks if isinstance(callback, EmaCallback))
    assert ema.trainer is trainer
