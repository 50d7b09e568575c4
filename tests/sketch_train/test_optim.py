"""Layer-wise learning-rate decay and frozen backbones, on ConvNeXt and ViT."""

import pytest
import torch
from transformers import get_scheduler

from sketch_train.arguments import ModelArguments, SketchTrainingArguments
from sketch_train.model import build_model
from sketch_train.optim import freeze_backbone, layer_decay_optimizer

LABELS = ["cat", "dog", "fish"]


def model(architecture: str = "test_convnext"):
    return build_model(ModelArguments(model_name_or_path=architecture, image_size=32), LABELS)[0]


def learning_rates(optimizer, model) -> dict[str, float]:
    names = {id(p): n.removeprefix("timm_model.") for n, p in model.named_parameters()}
    return {names[id(p)]: group["lr"] for group in optimizer.param_groups for p in group["params"]}


def args(tmp_path, **overrides) -> SketchTrainingArguments:
    return SketchTrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.05, layer_decay=0.8,
                                   optim="adamw_torch", precision="fp32", report_to="none", **overrides)


@pytest.mark.parametrize("architecture, stem, head, depth", [
    ("test_convnext", "stem.0.weight", "head.fc.weight", 10),  # stem, 9 blocks, head
    ("test_vit", "patch_embed.proj.weight", "head.weight", 7),  # patch embedding, 6 blocks, head
])
def test_layer_decay_gives_the_stem_a_smaller_learning_rate_than_the_head(tmp_path, architecture, stem, head, depth):
    net = model(architecture)
    rates = learning_rates(layer_decay_optimizer(net, args(tmp_path)), net)
    assert rates[head] == pytest.approx(1e-3)
    assert rates[stem] == pytest.approx(1e-3 * 0.8 ** depth)
    assert len(rates) == len(list(net.parameters()))


def test_the_scheduler_keeps_the_ratio_and_the_head_rate_is_the_one_logged(tmp_path):
    net = model()
    optimizer = layer_decay_optimizer(net, args(tmp_path))
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=2, num_training_steps=10)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    rates = learning_rates(optimizer, net)
    assert rates["stem.0.weight"] / rates["head.fc.weight"] == pytest.approx(0.8 ** 10)
    assert scheduler.get_last_lr()[0] == rates["head.fc.weight"]  # Trainer logs the first group's rate


def test_weight_decay_skips_norms_and_biases(tmp_path):
    net = model()
    optimizer = layer_decay_optimizer(net, args(tmp_path))
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    parameters = dict(net.timm_model.named_parameters())
    assert decay[id(parameters["stem.0.weight"])] == 0.05
    assert decay[id(parameters["stem.0.bias"])] == decay[id(parameters["head.norm.weight"])] == 0.0


def gradients(net) -> dict[str, bool]:
    net.train()
    net(torch.rand(2, 3, 32, 32), labels=torch.tensor([0, 1])).loss.backward()
    return {name: parameter.grad is not None for name, parameter in net.timm_model.named_parameters()}


def test_frozen_backbone_gets_no_gradients_and_the_head_does():
    net = model()
    freeze_backbone(net)
    got = gradients(net)
    assert got["head.fc.weight"] and got["head.norm.weight"]
    assert not any(has for name, has in got.items() if not name.startswith("head."))


def test_unfreezing_the_last_blocks_gives_them_gradients():
    net = model()
    freeze_backbone(net, unfreeze_last_n_blocks=2)
    got = gradients(net)
    # test_convnext's last two depths: stage 3's downsample + block 0, and its block 1
    assert got["stages.3.blocks.1.mlp.fc2.weight"] and got["stages.3.blocks.0.conv_dw.weight"]
    assert got["stages.3.downsample.1.weight"] and got["head.fc.weight"]
    assert not got["stages.2.blocks.3.conv_dw.weight"] and not got["stem.0.weight"]


def test_layer_decay_leaves_frozen_parameters_out(tmp_path):
    net = model()
    freeze_backbone(net)
    rates = learning_rates(layer_decay_optimizer(net, args(tmp_path)), net)
    assert set(rates) == {"head.norm.weight", "head.norm.bias", "head.fc.weight", "head.fc.bias"}
