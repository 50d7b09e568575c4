"""Any timm architecture as a transformers `AutoModelForImageClassification`, via TimmWrapper, with its head.

Heads are chosen through timm's own constructor arguments, so that they survive save -> pipeline(): TimmWrapper
rebuilds a saved model as `timm.create_model(architecture, **config.model_args)` and then loads the weights, so a
head swapped in by hand (an nn.Sequential on `timm_model.head`) would not be rebuilt and its weights would be dropped.
"""

import logging
from pathlib import Path

import timm
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    PreTrainedModel,
    TimmWrapperConfig,
    TimmWrapperForImageClassification,
    TimmWrapperImageProcessor,
)

from .pypi_weights import pypi_checkpoint_folder
from .sources import hub_model_id, is_bare_architecture, is_pypi_source, label_names_of

logger = logging.getLogger(__name__)


class ModelSourceError(ValueError):
    """`model_name_or_path` names nothing that can be loaded."""


def build_model(model_args, label_names: list[str]) -> tuple[PreTrainedModel, TimmWrapperImageProcessor]:
    """Return a classifier with one output per label and the image processor that `pipeline()` will use.

    The processor is built from `config.pretrained_cfg`, which is saved in config.json, so the
    saved folder reproduces the eval transform exactly.
    """
    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }
    model_kwargs = {"drop_path_rate": model_args.drop_path_rate} if model_args.drop_path_rate is not None else {}
    model_kwargs |= head_model_args(model_args.head, model_args.head_hidden_size)
    source = model_args.model_name_or_path
    try:
        if is_pypi_source(source):
            model = _pretrained(str(pypi_checkpoint_folder(source, model_args.cache_dir)), labels, model_kwargs, None)
        elif is_bare_architecture(source):
            model = _random_init(source, labels, model_kwargs)
        else:
            model = _pretrained(source, labels, model_kwargs, model_args.cache_dir)
    except TypeError as error:  # timm's constructor refused an option: name it and say what works
        raise ModelSourceError(f"{source}: {error}.{unsupported_head_hint(model_args.head)}") from error
    model.config.pretrained_cfg = _data_config(model.config.pretrained_cfg, model_args)
    # TimmWrapperConfig.to_dict() keeps a checkpoint's old `label_names` over the new id2label: overwrite it.
    model.config.label_names = list(label_names)
    return model, TimmWrapperImageProcessor(pretrained_cfg=model.config.pretrained_cfg)


def saved_label_names(source: str, cache_dir: str | None = None) -> list[str]:
    """The labels of a saved classifier (a run folder or Hub id), for predicting without a train.csv."""
    try:
        config = AutoConfig.from_pretrained(hub_model_id(source), cache_dir=cache_dir, trust_remote_code=False)
    except OSError as error:
        raise ModelSourceError(f"could not load {source!r}: {str(error).splitlines()[0]} Pass a run's output_dir "
                               "or a Hub model id.") from error
    return label_names_of(config.to_dict())


def _random_init(architecture: str, labels: dict, model_kwargs: dict) -> PreTrainedModel:
    if not timm.is_model(architecture.split(".")[0]):
        close = timm.list_models(f"*{architecture.split('_')[0]}*")[:5]
        raise ModelSourceError(
            f"model_name_or_path={architecture!r} is not a timm architecture, a local folder or a Hub id "
            f"(owner/name). Similar timm names: {close or 'none'}."
        )
    timm_model = timm.create_model(architecture, pretrained=False, num_classes=labels["num_labels"], **model_kwargs)
    pretrained_cfg = {k: v for k, v in timm_model.pretrained_cfg.items() if k not in ("url", "hf_hub_id", "num_classes")}
    config = TimmWrapperConfig(
        architecture=architecture, pretrained_cfg=pretrained_cfg, model_args=model_kwargs or None, **labels
    )
    model = TimmWrapperForImageClassification(config)
    # The wrapper re-initialises weights its own way; keep timm's initialisation, which its recipes assume.
    model.timm_model.load_state_dict(timm_model.state_dict())
    return model


def merged_model_args(saved: dict | None, ours: dict) -> dict | None:
    """The checkpoint's timm constructor arguments (e.g. its MLP head) updated with ours, without its class count.

    timm >= 1.0.31's save_for_hf/push_to_hf_hub record `num_classes` in model_args; TimmWrapper passes its own
    (`num_labels`, for the new head) beside them, and timm.create_model would get it twice.
    """
    merged = {key: value for key, value in (saved or {}).items() if key != "num_classes"} | ours
    return merged or None


def _pretrained(source: str, labels: dict, model_kwargs: dict, cache_dir: str | None) -> PreTrainedModel:
    source = hub_model_id(source)
    folder = Path(source)
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise ModelSourceError(
            f"{folder} has no config.json, so it is not a saved model. Point model_name_or_path at a run's "
            "output_dir or one of its checkpoint-* folders."
        )
    pickled = sorted(p.name for p in folder.glob("*.bin")) if folder.is_dir() else []
    if pickled and not list(folder.glob("*.safetensors")):
        raise ModelSourceError(
            f"{folder} holds only pickled weights ({', '.join(pickled)}), which can run code when loaded; only "
            "safetensors are loaded. If you trust their source, convert them with "
            "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')."
        )
    try:
        saved = AutoConfig.from_pretrained(source, cache_dir=cache_dir, trust_remote_code=False).model_args
        model, loading = AutoModelForImageClassification.from_pretrained(
            source,
            **labels,
            ignore_mismatched_sizes=True,  # a new head for our classes
            use_safetensors=True,
            trust_remote_code=False,
            cache_dir=cache_dir,
            model_args=merged_model_args(saved, model_kwargs),  # replaces the checkpoint's own, so merged
            output_loading_info=True,
        )
    except OSError as error:
        raise ModelSourceError(
            f"could not load {source!r}: {str(error).splitlines()[0]} Without network access, use a local "
            "checkpoint folder or a bare timm architecture name (e.g. convnext_atto)."
        ) from error
    init_new_modules(model.timm_model, loading["missing_keys"])  # a new head the checkpoint has no weights for
    return model


def _data_config(pretrained_cfg: dict, model_args) -> dict:
    cfg = dict(pretrained_cfg)
    cfg.pop("num_classes", None)  # the checkpoint's class count, not ours: num_labels is the one that counts
    if model_args.image_size:
        cfg["input_size"] = [3, model_args.image_size, model_args.image_size]
        cfg.pop("test_input_size", None)
    if model_args.crop_pct:
        cfg["crop_pct"] = model_args.crop_pct
        cfg.pop("test_crop_pct", None)
    if model_args.image_mean:
        cfg["mean"] = list(model_args.image_mean)
    if model_args.image_std:
        cfg["std"] = list(model_args.image_std)
    if model_args.invert:
        # (1 - x - m) / s == (x - (1 - m)) / (-s): inversion becomes part of the saved normalisation.
        cfg["mean"] = [1 - m for m in cfg["mean"]]
        cfg["std"] = [-s for s in cfg["std"]]
    return cfg


# ---- heads ----------------------------------------------------------------------------------------------------------
HEADS = ("linear", "mlp", "attention_pool")


def head_model_args(head: str, hidden_size: int) -> dict:
    """timm constructor arguments for the head (none for the architecture's own linear classifier)."""
    if head == "mlp":
        return {"head_hidden_size": hidden_size}  # ConvNeXt: pool -> norm -> fc(hidden) -> GELU -> fc(classes)
    if head == "attention_pool":
        return {"global_pool": "map"}  # latent query attention pooling -> MLP -> fc(classes)
    return {}


def unsupported_head_hint(head: str) -> str:
    """What to try when timm's constructor refuses the head's arguments."""
    if head == "linear":
        return ""
    return (" --head mlp needs an architecture whose timm constructor takes head_hidden_size (ConvNeXt and most "
            "CNNs), --head attention_pool one that takes global_pool='map' (ViT, EVA); --head linear works for all.")


def init_new_modules(timm_model, missing_keys: set[str] | list[str]) -> list[str]:
    """Give modules that the checkpoint had no weights for timm's own initialisation; return their names.

    transformers initialises missing Linear/LayerNorm weights itself but leaves other parameters (the
    attention pool's latent query) as uninitialised memory, which can hold values like 1e38.
    """
    missing = {key.removeprefix("timm_model.") for key in missing_keys}
    renewed = []
    for name, module in timm_model.named_modules():
        has_missing = any(f"{name}.{p}" in missing for p, _ in module.named_parameters(recurse=False))
        if has_missing and hasattr(module, "init_weights"):
            module.init_weights()
            renewed.append(name)
    return renewed
