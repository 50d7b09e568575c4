"""Which parameters train, and at what learning rate: frozen backbones and layer-wise learning-rate decay.

Both use timm's own grouping of a model into stem -> blocks -> head (`group_matcher`), so they work for
ConvNeXt, ViT, EVA and any timm architecture that defines it.
"""

import logging

import torch
from timm.models import group_parameters
from timm.optim import param_groups_layer_decay
from transformers import Trainer

logger = logging.getLogger(__name__)


def layer_ids(timm_model) -> dict[str, int]:
    """Parameter name -> depth (0 = stem, then one per block, the largest = the head, i.e. everything unmatched)."""
    if not hasattr(timm_model, "group_matcher"):
        raise ValueError(f"{type(timm_model).__name__} has no timm group_matcher, so its blocks are unknown; "
                         "use it without --freeze_backbone/--layer_decay.")
    ids = group_parameters(timm_model, timm_model.group_matcher(coarse=False), reverse=True)
    head = max(ids.values()) + 1
    return {name: ids.get(name, head) for name, _ in timm_model.named_parameters()}


def freeze_backbone(model, unfreeze_last_n_blocks: int = 0) -> int:
    """Train only the head and the last N blocks of a TimmWrapper model; return the number of trainable tensors."""
    ids = layer_ids(model.timm_model)
    first_trained = max(ids.values()) - unfreeze_last_n_blocks
    trainable = 0
    for name, parameter in model.timm_model.named_parameters():
        parameter.requires_grad_(ids[name] >= first_trained)
        trainable += parameter.requires_grad
    logger.info("Frozen backbone: training %d of %d parameter tensors (the head and the last %d blocks)",
                trainable, len(ids), unfreeze_last_n_blocks)
    for module in _outermost_frozen(model.timm_model):
        module.register_forward_pre_hook(_stay_in_eval_mode)
    return trainable


def _outermost_frozen(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The largest submodules whose parameters all are frozen."""
    parameters = list(module.parameters())
    if parameters and not any(parameter.requires_grad for parameter in parameters):
        return [module]
    return [frozen for child in module.children() for frozen in _outermost_frozen(child)]


def _stay_in_eval_mode(module: torch.nn.Module, args) -> None:
    """A frozen part runs as at inference: its BatchNorm statistics stay the checkpoint's and its dropout is off.

    A hook, because Trainer calls model.train() before every step, which would put them back in training mode.
    """
    if module.training:
        module.eval()


def layer_decay_optimizer(model, args) -> torch.optim.Optimizer:
    """The optimizer `args.optim` names, with one learning rate per depth: lr x layer_decay^(head depth - depth).

    Trainer's schedulers scale each group's own `lr`, so timm's `lr_scale` is folded into it here. Groups are
    ordered head first, so the learning rate Trainer logs (the first group's) is the head's, the run's base rate.
    """
    timm_model = model.timm_model
    layer_ids(timm_model)  # a clear error for models without a group_matcher
    skip = timm_model.no_weight_decay() if hasattr(timm_model, "no_weight_decay") else ()
    groups = param_groups_layer_decay(timm_model, weight_decay=args.weight_decay, no_weight_decay_list=skip,
                                      layer_decay=args.layer_decay)
    for group in groups:
        group["lr"] = args.learning_rate * group["lr_scale"]
    groups.sort(key=lambda group: -group["lr_scale"])
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    return optimizer_cls(groups, **optimizer_kwargs)
