"""No pickle or remote code from a checkpoint is run, CSV paths stay in their folder, no secret lands in a run's files."""

import json
import pickle
import shutil
from pathlib import Path

import pytest
from conftest import run_script, tiny_run_flags

from sketch_data import SketchDataError
from sketch_data.csv_files import read_test_csv
from sketch_train.arguments import ModelArguments
from sketch_train.model import ModelSourceError, build_model


class TouchOnUnpickle:
    """A pickle payload: unpickling it creates `marker`, standing in for any code an attacker wants run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_checkpoint_with_only_pickled_weights_is_refused_unopened(tmp_path, tiny_run):
    folder, marker = tmp_path / "pickled", tmp_path / "unpickled"
    folder.mkdir()
    shutil.copy(tiny_run / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
    with pytest.raises(ModelSourceError) as raised:
        build_model(ModelArguments(model_name_or_path=str(folder)), ["a", "b"])
    assert str(raised.value) == (
        f"{folder} holds only pickled weights (pytorch_model.bin), which can run code when loaded; only safetensors "
        "are loaded. If you trust their source, convert them with "
        "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')."
    )
    assert not marker.exists()


def test_remote_code_named_by_a_checkpoint_is_never_run(tmp_path, tiny_run):
    folder, marker = tmp_path / "remote_code", tmp_path / "code_ran"
    folder.mkdir()
    shutil.copy(tiny_run / "model.safetensors", folder)
    config = json.loads((tiny_run / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                    "from transformers import TimmWrapperForImageClassification as EvilModel\n")
    model, _ = build_model(ModelArguments(model_name_or_path=str(folder)), ["a", "b"])
    assert type(model).__name__ == "TimmWrapperForImageClassification"  # the library's own class
    assert not marker.exists()


@pytest.mark.parametrize("path", ["../../../etc/passwd", "/etc/passwd"])
def test_test_csv_cannot_reach_outside_its_folder(tmp_path, path):
    (tmp_path / "test").mkdir()
    (tmp_path / "test.csv").write_text(f"image_path\n{path}\n")
    with pytest.raises(SketchDataError, match=r"line 2: image_path .* points outside the image folder"):
        read_test_csv(tmp_path / "test.csv", tmp_path / "test")


SECRETS = {
    "HF_TOKEN": "hf_SecretTokenDoNotLeak7f3a9c",
    "HUGGING_FACE_HUB_TOKEN": "hf_OlderNameTokenDoNotLeak51e0",
    "WANDB_API_KEY": "wandbKeyDoNotLeak0c4f2b9e",
}


def test_no_secret_from_the_environment_is_written_into_a_run(tmp_path, quickdraw_mini):
    output_dir = tmp_path / "run"
    result = run_script("run_classification.py", *tiny_run_flags(
        quickdraw_mini, output_dir, "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "1",
        "--eval_strategy", "steps", "--eval_steps", "1"), env=SECRETS)
    assert result.returncode == 0, result.stderr[-3000:]
    files = [f for f in output_dir.rglob("*") if f.is_file()]
    names = {f.name for f in files}
    assert {"training_args.bin", "trainer_state.json", "config.json", "README.md", "submission.csv",
            "optimizer.pt", "rng_state.pth"} <= names  # the pickles too, byte for byte
    for secret in SECRETS.values():
        assert not [f for f in files if secret.encode() in f.read_bytes()]
        assert secret not in result.stdout + result.stderr
