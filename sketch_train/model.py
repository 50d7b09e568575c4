"""Any timm architecture as a transformers `AutoModelForImageClassification`, via TimmWrapper, with its head.

Heads are chosen through timm's own constructor arguments, so that they survive save -> pipeline(): TimmWrapper
rebuilds a saved model as `timm.create_model(architecture, **config.model_args)` and then loads the weights, so a
head swapped in by hand (an nn.Sequential on `timm_model.head`) would not be rebuilt and its weights would be dropped.
"""

import difflib
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import timm
from safetensors import safe_open
from timm.models import get_pretrained_cfg
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    PretrainedConfig,
    PreTrainedModel,
    TimmWrapperConfig,
    TimmWrapperForImageClassification,
    TimmWrapperImageProcessor,
)
from transformers.utils import SAFE_WEIGHTS_NAME, cached_file

from .optim import layer_ids
from .pypi_weights import pypi_checkpoint_folder
from .sources import TIMM_HUB_OWNER, hub_model_id, is_bare_architecture, is_pypi_source, label_names_of

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
            folder = str(pypi_checkpoint_folder(source, model_args.cache_dir))
            model = _pretrained(folder, labels, model_kwargs, model_args.image_size, None)
        elif is_bare_architecture(source):
            model = _random_init(source, labels, model_kwargs, model_args.image_size)
        else:
            model = _pretrained(source, labels, model_kwargs, model_args.image_size, model_args.cache_dir)
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


def _random_init(architecture: str, labels: dict, model_kwargs: dict, image_size: int | None) -> PreTrainedModel:
    _check_architecture(architecture)
    default = get_pretrained_cfg(architecture)
    logger.warning("%s is a bare architecture: training starts from random weights. For timm's pretrained weights, "
                   "name a tag, e.g. --model_name_or_path %s", architecture,
                   default.hf_hub_id if default and default.hf_hub_id else f"(timm has none for {architecture})")
    model_kwargs = model_kwargs | input_size_model_args(default.to_dict() if default else {}, image_size)
    timm_model = timm.create_model(architecture, pretrained=False, num_classes=labels["num_labels"], **model_kwargs)
    pretrained_cfg = {k: v for k, v in timm_model.pretrained_cfg.items() if k not in ("url", "hf_hub_id", "num_classes")}
    config = TimmWrapperConfig(
        architecture=architecture, pretrained_cfg=pretrained_cfg, model_args=model_kwargs or None, **labels
    )
    model = TimmWrapperForImageClassification(config)
    # The wrapper re-initialises weights its own way; keep timm's initialisation, which its recipes assume.
    model.timm_model.load_state_dict(timm_model.state_dict())
    return model


def similar_architectures(name: str) -> str:
    return ", ".join(difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)) or "none"


def input_size_model_args(pretrained_cfg: dict, image_size: int | None) -> dict:
    """timm's own way to run a fixed-input-size model (ViT, EVA, Swin, CLIP/SigLIP towers) at another size: the
    `img_size` constructor argument, saved in config.json's model_args so that pipeline() rebuilds the same model.
    A checkpoint's position embeddings are resampled to it on load (`check_loaded_tensors`)."""
    native = list(pretrained_cfg.get("input_size") or [])[1:]
    if not image_size or not pretrained_cfg.get("fixed_input_size") or native == [image_size, image_size]:
        return {}
    return {"img_size": image_size}


def merged_model_args(saved: dict | None, ours: dict) -> dict | None:
    """The checkpoint's timm constructor arguments (e.g. its MLP head) updated with ours, without its class count.

    timm >= 1.0.31's save_for_hf/push_to_hf_hub record `num_classes` in model_args; TimmWrapper passes its own
    (`num_labels`, for the new head) beside them, and timm.create_model would get it twice.
    """
    merged = {key: value for key, value in (saved or {}).items() if key != "num_classes"} | ours
    return merged or None


def _pretrained(source: str, labels: dict, model_kwargs: dict, image_size: int | None,
                cache_dir: str | None) -> PreTrainedModel:
    source = hub_model_id(source)
    config = checkpoint_config(source, cache_dir)
    model_kwargs = model_kwargs | input_size_model_args(config.pretrained_cfg or {}, image_size)
    try:
        model, loading = AutoModelForImageClassification.from_pretrained(
            source,
            **labels,
            ignore_mismatched_sizes=True,  # a new head for our classes; other tensors are checked below
            use_safetensors=True,
            trust_remote_code=False,
            cache_dir=cache_dir,
            model_args=merged_model_args(config.model_args, model_kwargs),  # replaces the checkpoint's own, so merged
            output_loading_info=True,
        )
    except OSError as error:
        raise _unavailable(source, error) from error
    init_new_modules(model.timm_model, loading["missing_keys"])  # a new head the checkpoint has no weights for
    check_loaded_tensors(model.timm_model, loading, lambda: _weights_file(source, cache_dir))
    return model


def check_model_source(model_args) -> None:
    """Stop with a ModelSourceError, before any data work, if the model named cannot be had (offline, a typo)."""
    source = model_args.model_name_or_path
    if is_bare_architecture(source):
        _check_architecture(source)
    elif not is_pypi_source(source):
        checkpoint_config(hub_model_id(source), model_args.cache_dir)


def _check_architecture(name: str) -> None:
    if not timm.is_model(name):
        raise ModelSourceError(f"model_name_or_path={name!r} is not a timm architecture, a local folder or a Hub id "
                               f"(owner/name). Similar timm names: {similar_architectures(name)}.")


def checkpoint_config(source: str, cache_dir: str | None) -> PretrainedConfig:
    """The checkpoint's config.json (downloaded, for a Hub id), or a one-line error that says what to do."""
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
        return AutoConfig.from_pretrained(source, cache_dir=cache_dir, trust_remote_code=False)
    except OSError as error:
        raise _unavailable(source, error) from error


def _unavailable(source: str, error: OSError) -> ModelSourceError:
    return ModelSourceError(f"could not load {source!r}: {str(error).splitlines()[0]} {_offline_hint(source)}")


def _offline_hint(hub_id: str) -> str:
    """What to do when a Hub checkpoint cannot be had: the user named weights, so never fall back to random ones."""
    if not hub_id.startswith(f"{TIMM_HUB_OWNER}/"):
        return ("Without network access, use a local checkpoint folder or a bare timm architecture name "
                "(e.g. convnext_atto, random weights).")
    architecture, _, tag = hub_id.removeprefix(f"{TIMM_HUB_OWNER}/").partition(".")
    if not timm.is_model(architecture):
        return f"timm has no architecture {architecture!r}; similar: {similar_architectures(architecture)}."
    known = timm.list_pretrained(f"{architecture}.*")
    unknown_tag = f" timm knows the tags {', '.join(known[:6]) or 'none'} for {architecture}." if tag and \
        f"{architecture}.{tag}" not in known else ""
    return (f"Download it where the Hub is reachable (`hf download {hub_id} --local-dir DIR`) and pass "
            f"--model_name_or_path DIR, or name the bare architecture {architecture} to train from random weights."
            + unknown_tag)


def _weights_file(source: str, cache_dir: str | None) -> str:
    folder = Path(source)
    return str(folder / SAFE_WEIGHTS_NAME) if folder.is_dir() else cached_file(source, SAFE_WEIGHTS_NAME,
                                                                                cache_dir=cache_dir)


def check_loaded_tensors(timm_model, loading: dict, weights_file: Callable[[], str]) -> None:
    """Make every backbone tensor the checkpoint's, or timm's resampling of it; name each one that is not.

    `ignore_mismatched_sizes` lets transformers re-initialise any tensor whose shape differs. That is meant for the
    classifier alone; position embeddings at another image size are resampled with the architecture's own
    `checkpoint_filter_fn`, as timm does when it loads pretrained weights, and anything else is logged by name.
    """
    head = head_tensor_names(timm_model)
    resized = [key for key in _timm_names(key for key, *_ in loading["mismatched_keys"]) if key not in head]
    restored = _resample_from_checkpoint(timm_model, resized, weights_file) if resized else []
    if restored:
        logger.info("Resampled %s from the checkpoint to this input size (timm's checkpoint_filter_fn)",
                    ", ".join(restored))
    problems = {
        "re-initialised (the checkpoint's shape differs and timm cannot resample it)":
            [key for key in resized if key not in restored],
        "new, initialised from scratch (not in the checkpoint)":
            [key for key in _timm_names(loading["missing_keys"]) if key not in head],
        "dropped (in the checkpoint, unused by this model)": _timm_names(loading["unexpected_keys"]),
    }
    for what, keys in problems.items():
        if keys:
            logger.warning("Backbone tensors %s: %s", what, ", ".join(keys))


def _timm_names(keys) -> list[str]:
    """transformers' tensor names (`timm_model.` + timm's), as timm names them, sorted."""
    return sorted(key.removeprefix("timm_model.") for key in keys)


def head_tensor_names(timm_model) -> set[str]:
    """The tensors of the head: the last of timm's parameter groups (pool, norm, MLP, classifier), which a new head
    replaces; without a group_matcher, the classifier that pretrained_cfg names."""
    try:
        ids = layer_ids(timm_model)
        return {name for name, depth in ids.items() if depth == max(ids.values())}
    except ValueError:
        classifiers = timm_model.pretrained_cfg.get("classifier") or ()
        prefixes = tuple(f"{name}." for name in ([classifiers] if isinstance(classifiers, str) else classifiers))
        return {name for name, _ in timm_model.named_parameters() if name.startswith(prefixes)}


def _resample_from_checkpoint(timm_model, keys: list[str], weights_file: Callable[[], str]) -> list[str]:
    """Load `keys` from the checkpoint through the architecture's checkpoint_filter_fn; return those that now fit."""
    filter_fn = getattr(sys.modules[type(timm_model).__module__], "checkpoint_filter_fn", None)
    if filter_fn is None:
        return []
    with safe_open(weights_file(), "pt") as weights:
        stored = set(weights.keys())  # timm's own names, or transformers' with the wrapper's prefix
        state = {key: weights.get_tensor(key if key in stored else f"timm_model.{key}") for key in keys}
    resampled = filter_fn(state, timm_model)
    target = timm_model.state_dict()
    fits = [key for key in keys if key in resampled and resampled[key].shape == target[key].shape]
    timm_model.load_state_dict({key: resampled[key] for key in fits}, strict=False)
    return fits


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
