"""The GPU presets run end to end on a CPU with their real architectures, shrunk, served under the presets' own Hub ids.

Each preset trains two steps on quickdraw-mini, evaluates, predicts, writes its card and reloads in pipeline(); only
its image size, data, output folder and step count change. What the preset asks for (head, freezing, layer-decay
groups, drop path, crop) is read off the live model and optimizer when training begins. The runs are `main()` in this
process (tests/test_readme_commands.py runs the presets' documented commands as processes).
"""

import json
import traceback
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, logged
from fake_hub import FakeHub, client_pointed_at
from PIL import Image
from shrunk_models import SHRUNK, save_shrunk
from transformers import TrainerCallback, pipeline

from sketch_train.machine import leave_process_group

PRESETS = REPO / "training_args"
SIZE = {"convnext_base_448": 64, "convnext_base_448_full": 64, "eva02_large_448_5fold_frozen": 56,
        "eva02_large_448_seed": 56}  # smaller than 448; EVA's patch is 14 px
# The CPU presets run with their own (small, real) models elsewhere in the suite, as their documented commands
RUN_ELSEWHERE = {
    "demo": "tests/test_readme_commands.py (python run_classification.py)",
    "quickdraw100": "tests/test_readme_commands.py",
    "quickdraw100_finetune": "tests/test_readme_commands.py",
    "ablation_quickdraw100": "tests/test_readme_commands.py (scripts/ablation.sh's baseline row)",
}


class Facts(TrainerCallback):
    """Records what reached the model and the optimizer when training begins, into the run's facts.json."""

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        timm_model = model.timm_model
        facts = {
            "trainable": sorted(n for n, p in timm_model.named_parameters() if p.requires_grad),
            "parameters": sorted(n for n, _ in timm_model.named_parameters()),
            "lr_scales": sorted({group.get("lr_scale", 1.0) for group in optimizer.param_groups}),
            "max_drop_path": max([m.drop_prob for m in timm_model.modules() if hasattr(m, "drop_prob")] or [0.0]),
            "classifier_outputs": timm_model.get_classifier().out_features,
        }
        (Path(args.output_dir) / "facts.json").write_text(json.dumps(facts))


def run_preset(argv: list[str]) -> str:
    """Run one preset in this process as `main()` (with the Facts callback); return its log, or its traceback."""
    import run_classification  # not at the top: spawned DataLoader workers import this file too

    with logged() as lines:
        try:
            run_classification.main(*run_classification.parse(argv), extra_callbacks=[Facts()])
        except Exception:
            return traceback.format_exc()
        finally:
            leave_process_group()
    return "\n".join(lines)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, quickdraw_mini) -> dict[str, tuple[Path, str]]:
    """preset -> (its output folder, its log), each run against the test Hub serving its shrunk checkpoint."""
    root = tmp_path_factory.mktemp("presets")
    with FakeHub(root / "hub", token="hf_unused") as hub, client_pointed_at(hub):
        for hub_id in {yaml.safe_load((PRESETS / f"{name}.yaml").read_text())["model_name_or_path"] for name in SIZE}:
            hub.serve_folder(hub_id, save_shrunk(hub_id, root / "checkpoints" / hub_id))
        return {name: (root / name, run_preset([str(PRESETS / f"{name}.yaml"), "--data_dir", str(quickdraw_mini),
                                                "--output_dir", str(root / name), "--image_size", str(size),
                                                "--max_steps", "2", "--report_to", "none"]))
                for name, size in SIZE.items()}


def test_every_preset_runs_here_or_elsewhere_in_the_suite():
    assert sorted(p.stem for p in PRESETS.glob("*.yaml")) == sorted([*SIZE, *RUN_ELSEWHERE])
    assert all(yaml.safe_load((PRESETS / f"{name}.yaml").read_text())["model_name_or_path"] in SHRUNK for name in SIZE)


@pytest.mark.parametrize("name", sorted(SIZE))
def test_the_preset_trains_evaluates_predicts_and_reloads(runs, name, quickdraw_mini):
    run, log = runs[name]
    assert "Traceback" not in log, log[-3000:]
    results = json.loads((run / "all_results.json").read_text())
    assert results["epoch"] > 0 and "train_runtime" in results
    assert 0 <= results["eval_accuracy"] <= 1
    submission = pd.read_csv(run / "submission.csv")
    assert len(submission) == len(pd.read_csv(quickdraw_mini / "test.csv"))
    assert "model-index" in (run / "README.md").read_text()
    classes = sorted(pd.read_csv(quickdraw_mini / "train.csv")["class_name"].unique())
    scores = pipeline("image-classification", model=str(run))(Image.new("RGB", (256, 256), "white"), top_k=len(classes))
    assert sorted(score["label"] for score in scores) == classes


@pytest.mark.parametrize("name", sorted(SIZE))
def test_what_the_preset_asks_for_reaches_the_model(runs, name):
    preset = yaml.safe_load((PRESETS / f"{name}.yaml").read_text())
    run, log = runs[name]
    facts = json.loads((run / "facts.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert facts["classifier_outputs"] == 10
    assert config["pretrained_cfg"]["input_size"] == [3, SIZE[name], SIZE[name]]
    assert config["pretrained_cfg"]["crop_pct"] == 1.0  # the whole drawing, not a centre crop
    assert facts["max_drop_path"] == pytest.approx(preset.get("drop_path_rate", 0.0))
    if preset.get("head") == "attention_pool":
        assert config["model_args"]["global_pool"] == "map" and "attn_pool.latent" in facts["trainable"]
    if preset.get("freeze_backbone"):
        assert all(name.startswith(("attn_pool.", "head.", "fc_norm.")) for name in facts["trainable"])
        assert "blocks.0.attn.qkv.weight" not in facts["trainable"] and facts["trainable"]
    else:
        assert facts["trainable"] == facts["parameters"]
    if "layer_decay" in preset:  # one learning rate per depth, from the stem's to the head's
        depths = len(facts["lr_scales"])
        assert depths >= 1 + sum(SHRUNK[preset["model_name_or_path"]]["depths"]) + 1
        assert facts["lr_scales"] == pytest.approx([preset["layer_decay"] ** k for k in reversed(range(depths))])
    else:
        assert facts["lr_scales"] == [1.0]
    if preset.get("head") == "attention_pool":  # the map pool reads every token: no feature cache, and it says why
        assert "Backbone tensors dropped (in the checkpoint, unused by this model): fc_norm.bias, fc_norm.weight" in log
        assert "without the feature cache: the head" in log and "reads every token" in log
    else:
        assert "Backbone tensors" not in log
