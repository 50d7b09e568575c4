"""push_to_hub.py and `run_classification.py --push_to_hub` against a local Hub (tests/fake_hub.py), with the real
huggingface_hub client in subprocesses: what lands on the Hub, loading it back with pipeline(), the token, failures."""

import csv
import hashlib
import json
import uuid
from pathlib import Path

import pytest
from conftest import run_script, tiny_run_flags
from fake_hub import FakeHub
from huggingface_hub import ModelCard

from sketch_train.hub import PushError, files_to_push

TOKEN = f"hf_test{uuid.uuid4().hex}"  # unique, so finding it anywhere means it leaked
MODEL_FILES = {"README.md", "config.json", "model.safetensors"}
METRICS = {"all_results.json", "train_results.json", "eval_results.json"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with FakeHub(tmp_path_factory.mktemp("hub"), token=TOKEN) as server:
        yield server


def hub_env(hub: FakeHub, home: Path, token: str | None = TOKEN) -> dict:
    """A client pointed at the local Hub, with no login of the developer's (HF_HOME) and Xet off."""
    return {"HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_TOKEN_PATH": str(home / "token"), "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": token or "", "HUGGING_FACE_HUB_TOKEN": ""}


def push(hub: FakeHub, run_dir: Path, repo_id: str, home: Path, *flags: str, token: str | None = TOKEN):
    return run_script("push_to_hub.py", "--output_dir", str(run_dir), "--repo_id", repo_id, *flags,
                      env=hub_env(hub, home, token), timeout=120)


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder` with its content hash and modification time, to prove a failure left it alone."""
    return {str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def pushed_run(tmp_path_factory, quickdraw_mini, hub):
    """A tiny training run that pushes itself with --push_to_hub at the end."""
    output_dir = tmp_path_factory.mktemp("pushed_run")
    home = tmp_path_factory.mktemp("hf_home")
    flags = tiny_run_flags(quickdraw_mini, output_dir, "--do_predict", "false", "--num_train_epochs", "1")
    result = run_script("run_classification.py", *flags, "--push_to_hub", "true", "--hub_model_id", "user/sketch-tiny",
                        env=hub_env(hub, home))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output_dir, home, result


def test_a_training_run_pushes_its_model_card_and_metrics_in_one_commit(pushed_run, hub):
    output_dir, _, _ = pushed_run
    commits = hub.commits("user/sketch-tiny")
    assert [commit["message"] for commit in commits] == [
        "Upload sketch classifier trained with run_classification.py", "initial commit"]
    assert set(commits[0]["changed"]) == MODEL_FILES | METRICS
    files = hub.files("user/sketch-tiny")
    assert set(files) == MODEL_FILES | METRICS | {".gitattributes"}  # no checkpoint-*, training_args.bin, logits
    for name in ("config.json", "model.safetensors", "all_results.json"):
        assert files[name] == (output_dir / name).read_bytes()


def test_the_hub_card_holds_the_measured_accuracy(pushed_run, hub, tmp_path):
    output_dir, _, _ = pushed_run
    (tmp_path / "README.md").write_bytes(hub.files("user/sketch-tiny")["README.md"])
    card = ModelCard.load(tmp_path / "README.md")
    measured = json.loads((output_dir / "all_results.json").read_text())
    assert {result.metric_type: result.metric_value for result in card.data.eval_results} == {
        "accuracy": measured["eval_accuracy"], "top_5_accuracy": measured["eval_top5_accuracy"]}
    assert (card.data.library_name, card.data.pipeline_tag) == ("transformers", "image-classification")
    assert card.data.datasets == ["quickdraw-mini"] and card.data.base_model is None  # test_convnext: random init
    assert 'pipeline("image-classification", model="user/sketch-tiny")' in card.text


def test_pipeline_loads_the_pushed_model_into_an_empty_cache_and_agrees_with_the_local_one(
        pushed_run, hub, tmp_path, quickdraw_mini):
    output_dir, _, _ = pushed_run
    with open(quickdraw_mini / "train.csv") as file:
        sketch = quickdraw_mini / "train" / next(csv.DictReader(file))["image_path"]
    cache = tmp_path / "cache"
    code = (
        "import json, sys\nfrom transformers import pipeline\n"
        "hub = pipeline('image-classification', model='user/sketch-tiny')(sys.argv[1])[0]\n"
        "local = pipeline('image-classification', model=sys.argv[2])(sys.argv[1])[0]\n"
        "print(json.dumps([hub, local]))\n"
    )
    env = {**hub_env(hub, tmp_path / "home", token=None), "HF_HUB_CACHE": str(cache)}  # anonymous: a public repo
    result = run_script("-c", code, str(sketch), str(output_dir), env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    from_hub, local = json.loads(result.stdout.strip().splitlines()[-1])
    assert from_hub["label"] == local["label"]
    assert from_hub["score"] == pytest.approx(local["score"], abs=1e-6)
    downloaded = {path.name for path in (cache / "models--user--sketch-tiny" / "snapshots").rglob("*")}
    assert {"config.json", "model.safetensors"} <= downloaded


def test_registering_the_sketch_pipeline_makes_the_plain_call_on_a_hub_model_put_transparency_on_white(
        pushed_run, hub, tmp_path, quickdraw_mini):
    """Without trust_remote_code a Hub repo cannot pick the pipeline class; one registration in the process can."""
    from PIL import Image

    output_dir, _, _ = pushed_run
    gray = Image.open(quickdraw_mini / "test" / "0.JPEG").convert("L")
    sketch = Image.new("RGBA", gray.size, (0, 0, 0, 0))
    sketch.paste((0, 0, 0, 255), mask=gray.point(lambda v: 255 - v))
    sketch.save(tmp_path / "canvas.png")
    code = (
        "import json, sys\nfrom transformers import pipeline\n"
        "from sketch_train.pipeline import SketchImageClassificationPipeline, register_sketch_pipeline\n"
        "plain = pipeline('image-classification', model='user/sketch-tiny')\n"
        "register_sketch_pipeline()\n"
        "registered = pipeline('image-classification', model='user/sketch-tiny')\n"
        "local = pipeline('image-classification', model=sys.argv[2], pipeline_class=SketchImageClassificationPipeline)\n"
        "print(json.dumps([type(plain).__name__, type(registered).__name__, plain(sys.argv[1])[0],"
        " registered(sys.argv[1])[0], local(sys.argv[1])[0]]))\n"
    )
    env = {**hub_env(hub, tmp_path / "home", token=None), "HF_HUB_CACHE": str(tmp_path / "cache")}
    result = run_script("-c", code, str(tmp_path / "canvas.png"), str(output_dir), env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    plain_class, registered_class, plain, registered, local = json.loads(result.stdout.strip().splitlines()[-1])
    assert (plain_class, registered_class) == ("ImageClassificationPipeline", "SketchImageClassificationPipeline")
    assert registered["label"] == local["label"] and registered["score"] == pytest.approx(local["score"], abs=1e-6)
    assert plain["score"] != pytest.approx(local["score"], abs=1e-4)  # plain pipeline(): black paper


def test_push_to_hub_cli_pushes_a_finished_run_to_a_private_branch(tiny_run, hub, tmp_path):
    result = push(hub, tiny_run, "user/sketch-branch", tmp_path, "--private", "--revision", "dev")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith(f"Pushed {tiny_run} to {hub.url}/user/sketch-branch/commit/")
    assert set(hub.commits("user/sketch-branch", "dev")[0]["changed"]) == MODEL_FILES | METRICS
    assert [commit["message"] for commit in hub.commits("user/sketch-branch")] == ["initial commit"]  # main
    assert hub.info("user/sketch-branch", None)["private"] is True


def test_push_uses_the_cached_login_when_hf_token_is_unset(tiny_run, hub, tmp_path):
    (tmp_path / "token").write_text(TOKEN)  # where `hf auth login` keeps it, under HF_HOME
    result = push(hub, tiny_run, "user/sketch-login", tmp_path, token=None)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "README.md" in hub.files("user/sketch-login")


def test_push_without_any_token_stops_before_the_network(tiny_run, hub, tmp_path):
    result = push(hub, tiny_run, "user/sketch-anonymous", tmp_path, token=None)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: no Hugging Face token to push {tiny_run} to user/sketch-anonymous: "
        "set HF_TOKEN or run `hf auth login`.")


@pytest.mark.parametrize("fault, expected", [
    ("500 on commit", "the Hub had a server error (500); {run} is untouched. Wait a few minutes"),
    ("dropped commit", "could not reach {hub} (RemoteProtocolError); {run} is untouched. Check the network connection "
                       "and HF_ENDPOINT"),
    ("wrong token", "the Hub refused the token (401 Unauthorized); {run} is untouched. Set HF_TOKEN to a token with "
                    "write access or run `hf auth login`"),
])
def test_a_failed_push_changes_nothing_says_why_in_one_line_and_a_rerun_completes_it(
        fault, expected, tiny_run, hub, tmp_path):
    repo_id = f"user/sketch-{fault.replace(' ', '-')}"
    token = "hf_wrong" if fault == "wrong token" else TOKEN
    if fault != "wrong token":
        hub.fail("commit", status=500 if fault.startswith("500") else None)
    before = snapshot(tiny_run)

    failed = push(hub, tiny_run, repo_id, tmp_path, token=token)

    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == failed.stderr.strip().splitlines()[-1], failed.stderr[-3000:]
    assert errors[0] == (f"error: push of {tiny_run} to {repo_id} failed: {expected.format(run=tiny_run, hub=hub.url)}, "
                         f"then push again with `python push_to_hub.py --output_dir {tiny_run} --repo_id {repo_id}`.")
    assert "Traceback" not in failed.stderr
    assert snapshot(tiny_run) == before
    if fault == "wrong token":
        assert not (hub.root / "repos" / f"{repo_id}.json").exists()
    else:
        assert [commit["message"] for commit in hub.commits(repo_id)] == ["initial commit"]

    again = push(hub, tiny_run, repo_id, tmp_path)

    assert again.returncode == 0, again.stderr[-3000:]
    assert set(hub.files(repo_id)) == MODEL_FILES | METRICS | {".gitattributes"}
    assert snapshot(tiny_run) == before


def test_refuses_weights_that_are_not_safetensors(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(PushError) as error:
        files_to_push(tmp_path)
    assert str(error.value) == (
        f"{tmp_path} holds only pytorch_model.bin, not model.safetensors: only safetensors weights are pushed. "
        "Save the model with save_safetensors=True (the Trainer default) and push again.")


def test_pushes_only_what_a_user_of_the_model_needs(tmp_path):
    for name in ("config.json", "model.safetensors", "all_results.json", "confusion.png", "training_args.bin",
                 "optimizer.pt", "eval_logits.npy", "submission.csv", "trainer_state.json", "run_summary.json"):
        (tmp_path / name).write_text("x")
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "model.safetensors").write_text("x")
    assert files_to_push(tmp_path) == ["all_results.json", "config.json", "confusion.png", "model.safetensors"]
    assert files_to_push(tmp_path, with_extras=False) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("flags, message", [
    (["--hub_token", "hf_x"], "error: --hub_token is not accepted (a token on the command line ends up in logs and "
                              "saved arguments): set HF_TOKEN or run `hf auth login` instead."),
    (["--push_to_hub", "true"], "error: --push_to_hub needs --hub_model_id owner/name, the Hub repository to push to."),
])
def test_run_classification_refuses_a_token_flag_and_a_push_without_repo(flags, message, tmp_path, capsys):
    import run_classification

    assert run_classification.cli(["--output_dir", str(tmp_path), "--report_to", "none", *flags]) == 2
    assert capsys.readouterr().err.strip() == message


def test_run_classification_reports_a_failed_push_in_one_line(monkeypatch, tmp_path, capsys):
    import run_classification

    def push_fails(*arguments):
        raise PushError("push of runs/x to user/repo failed: the Hub had a server error (500); runs/x is untouched.")

    monkeypatch.setattr(run_classification, "main", push_fails)
    assert run_classification.cli(["--output_dir", str(tmp_path), "--report_to", "none"]) == 1
    assert capsys.readouterr().err == (
        "error: push of runs/x to user/repo failed: the Hub had a server error (500); runs/x is untouched.\n")


def test_the_token_is_in_no_file_and_no_output(pushed_run, hub, tiny_run):
    """Last in this module, so the Hub's store holds every push above (the Hub refuses writes without the token)."""
    output_dir, home, result = pushed_run
    folders = (output_dir, hub.root, home, tiny_run)
    files = [path for folder in folders for path in folder.rglob("*") if path.is_file()]
    leaked = [str(path) for path in files if TOKEN.encode() in path.read_bytes()]
    assert leaked == []
    assert TOKEN not in result.stdout + result.stderr
