"""The accelerate configs in training_args/accelerate/, read and resolved by accelerate's own launcher code.

Only cpu_2proc.yaml can run here (tests/test_multiprocess.py); the GPU ones are checked up to the
environment that `accelerate launch` would hand to each process.
"""

import pytest
import timm
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
from accelerate.utils.launch import (
    prepare_multi_gpu_env,
    prepare_simple_launcher_cmd_env,
)
from conftest import REPO

CONFIGS = REPO / "training_args" / "accelerate"
EXPECTED = {  # file: (distributed_type, num_machines, num_processes)
    "single_gpu.yaml": ("NO", 1, 1),
    "multi_gpu.yaml": ("MULTI_GPU", 1, 8),
    "multi_node.yaml": ("MULTI_GPU", 2, 16),
    "fsdp.yaml": ("FSDP", 1, 8),
    "cpu_2proc.yaml": ("MULTI_GPU", 1, 2),
}


def launch_args(config: str, *flags: str):
    """The arguments `accelerate launch --config_file CONFIG FLAGS run_classification.py` resolves to."""
    parser = launch_command_parser()
    args = parser.parse_args(["--config_file", str(CONFIGS / config), *flags, "run_classification.py"])
    return _validate_launch_command(args)[0]


def fsdp_policy(monkeypatch, *flags: str):
    """The FSDP2 wrap policy the processes would build from the environment the launcher gives them."""
    env = prepare_multi_gpu_env(launch_args("fsdp.yaml", *flags))
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    return FullyShardedDataParallelPlugin()


def test_every_config_is_checked():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_with_accelerates_loader(name):
    config = load_config_from_file(str(CONFIGS / name))
    assert (config.distributed_type.value, config.num_machines, config.num_processes) == EXPECTED[name]
    assert config.mixed_precision == "no"  # the preset's --precision decides, on every config


def test_single_gpu_uses_gpu_0():
    _, env = prepare_simple_launcher_cmd_env(launch_args("single_gpu.yaml"))
    assert env["CUDA_VISIBLE_DEVICES"] == "0"


def test_multi_gpu_starts_one_process_per_gpu_and_takes_num_processes_from_the_command_line():
    args = launch_args("multi_gpu.yaml", "--num_processes", "4")
    prepare_multi_gpu_env(args)
    assert args.multi_gpu and args.nproc_per_node == "4"


def test_multi_node_takes_rank_and_address_from_the_command_line():
    args = launch_args("multi_node.yaml", "--machine_rank", "1", "--main_process_ip", "10.1.2.3")
    prepare_multi_gpu_env(args)
    assert (args.nnodes, args.node_rank, args.nproc_per_node) == ("2", 1, "8")
    assert (args.rdzv_backend, args.rdzv_endpoint) == ("static", "10.1.2.3:29500")


def test_cpu_config_starts_two_processes():
    """accelerate's own MULTI_CPU type would start one process without mpirun; see the config's comment."""
    args = launch_args("cpu_2proc.yaml")
    prepare_multi_gpu_env(args)
    assert args.multi_gpu and args.nproc_per_node == "2"


def test_fsdp_options_are_known_to_accelerate_and_reach_the_processes(monkeypatch):
    options = {action.dest for action in launch_command_parser()._actions}
    keys = load_config_from_file(str(CONFIGS / "fsdp.yaml")).fsdp_config
    assert not set(keys) - options, "accelerate ignores unknown fsdp_config keys silently"
    plugin = fsdp_policy(monkeypatch)
    assert (plugin.fsdp_version, plugin.min_num_params) == (2, 10_000_000)
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"  # one model.safetensors for pipeline()


def wrapped_modules(plugin, model_name: str) -> tuple[set[str], set[str]]:
    """(names of modules that become FSDP units, names of the model's blocks), built on the meta device."""
    with torch.device("meta"):
        model = timm.create_model(model_name, pretrained=False)
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    units = {name for name, module in model.named_modules() if policy(module)}
    blocks = {name for name, module in model.named_modules() if type(module).__name__.endswith("Block")}
    return units, blocks


@pytest.mark.parametrize("model_name", ["vit_large_patch16_224", "eva02_large_patch14_448"])
def test_fsdp_size_policy_makes_each_transformer_block_one_unit(monkeypatch, model_name):
    units, blocks = wrapped_modules(fsdp_policy(monkeypatch), model_name)
    assert len(blocks) == 24 and blocks <= units
    assert not [u for u in units if any(u.startswith(b + ".") for b in blocks)], "nothing inside a block"


def test_fsdp_block_class_override_for_convnext(monkeypatch):
    """The README's override for ConvNeXt, whose early blocks are too small for the size policy."""
    plugin = fsdp_policy(monkeypatch, "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
                         "--fsdp_transformer_layer_cls_to_wrap", "ConvNeXtBlock")
    units, blocks = wrapped_modules(plugin, "convnext_large")
    assert len(blocks) == 36 and units == blocks
