"""Classifier heads that survive save -> pipeline(): chosen through timm's own constructor arguments.

TimmWrapper rebuilds a saved model as `timm.create_model(architecture, **config.model_args)` and then loads
the weights, so a head swapped in by hand (an nn.Sequential on `timm_model.head`) would not be rebuilt by
`pipeline()` and its weights would be dropped. Heads built by timm's constructor from `model_args` are.
"""

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
