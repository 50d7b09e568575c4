"""Every command shown in README.md and docs/ runs as written, in a folder laid out like a fresh clone.

The commands are read out of the documents, so the two cannot drift apart: a new command without a plan here fails
`test_every_documented_command_has_a_plan`. A plan may only append override flags that shrink a command (epochs,
steps, image size, the tiny model, the data folder, the output folder, a script's --quick), or set the variables
that shrink a script driven by them; it never edits the command. Commands run in document order, so later ones use what earlier ones made
(runs/demo, the pushed model), as they would for a user who follows the README. Skipped commands say why.

A plain `python script.py args` (no shell syntax) runs as `__main__` in this pytest worker, in the sandbox folder
with the sandbox's environment: a new process would spend most of its time importing what the worker already has.
Each script that runs so has a subprocess test of its own (exit code, one-line errors), here (`own_process`) or in
its test file; every other command runs in bash, as typed.
"""

import contextlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import REPO, free_port, wait_until_serving
from fake_hub import FakeHub
from PIL import Image

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
COMMAND_WORDS = ("python ", "python3 ", ".venv/bin/python ", "accelerate launch ", "torchrun ", "bash ", "scripts/")
ENV_PREFIX = re.compile(r"""^([A-Z_]+=("[^"]*"|'[^']*'|\S+) )+""")  # VAR=value ... before a command
MINI = "../shared/data/quickdraw-mini"  # the sandbox has ../shared beside it, like a checkout
TOKEN = "hf_readme_test_token"


@dataclass(frozen=True)
class Run:
    append: str = ""  # override flags that shrink the command
    env: dict = field(default_factory=dict)  # variables that shrink a script driven by them
    last_step_only: bool = False  # "install && run": .ci/run has done the install steps
    submission: str | None = None  # a run folder whose submission.csv must cover its test.csv
    timeout: int = 300
    own_process: str = ""  # why a plain `python script.py` runs in a process of its own, not in the worker


@dataclass(frozen=True)
class Serve:
    append: str = ""  # start, wait until it answers HTTP 200, stop


@dataclass(frozen=True)
class Skip:
    reason: str


TINY = ("--model_name_or_path test_convnext --image_size 32 --num_train_epochs 1 --precision fp32 "
        "--per_device_train_batch_size 8 --per_device_eval_batch_size 32 --dataloader_num_workers 0 --head linear")
ON_MINI = f"{TINY} --data_dir {MINI}"
HUB = "huggingface_hub reads HF_ENDPOINT and the token once, when it is imported"
ONLY_HERE = "the script's one run as a process"
MULTI_GPU = Skip("needs several GPUs; the 2-process CPU row runs the same script under the same launcher")

DOCTOR_MEASUREMENTS = [  # docs/data.md: the fine-tunes and k-fold runs that measure what the doctor's advice is worth
    "python scripts/train_kfold.py training_args/quickdraw100_finetune.yaml 5 --data_dir data/qd100_noisy "
    "--group_duplicates true --do_eval true --output_dir runs/noisy_kfold",
    "python scripts/doctor.py --data_dir data/qd100_noisy --output_dir runs/doctor_noisy_oof --model_name_or_path "
    "../shared/models/tf_efficientnet_lite0.in1k --precision fp32 --oof runs/noisy_kfold runs/frozen_grouped "
    "--max_label_issues 0.1",
    "python scripts/score_doctor.py --issues runs/doctor_noisy_oof/issues.csv --injected data/qd100_noisy/injected.csv",
    "python run_classification.py training_args/quickdraw100_finetune.yaml --seed 42 --output_dir runs/clean_s42",
    "python run_classification.py training_args/quickdraw100_finetune.yaml --data_dir data/qd100_noisy --seed 42 "
    "--output_dir runs/noisy_s42",
    "python run_classification.py training_args/quickdraw100_finetune.yaml --data_dir data/qd100_noisy "
    "--group_duplicates true --exclude_images runs/doctor_noisy_oof/issues.csv --seed 42 --output_dir runs/cleaned_s42",
    "python scripts/score_doctor.py --injected data/qd100_noisy/injected.csv --submission runs/noisy_s42/submission.csv",
    "python scripts/train_kfold.py training_args/quickdraw100_finetune.yaml 5 --data_dir data/qd100_noisy "
    "--freeze_backbone true --unfreeze_last_n_blocks 0 --num_train_epochs 10 --learning_rate 1e-3 "
    "--per_device_train_batch_size 64 --do_eval true --group_duplicates true --output_dir runs/frozen_grouped",
    "python scripts/score_doctor.py --injected data/qd100_noisy/injected.csv --oof runs/frozen_grouped --submission "
    "runs/frozen_grouped_ensemble/submission.csv",
    "python scripts/ensemble.py --runs runs/noisy_kfold_fold{0,1,2,3,4} --output_dir runs/noisy_kfold_copies "
    "--solution data/qd100_noisy/solution.csv --duplicate_labels runs/doctor_noisy_oof/issues.csv",
]
PLANS = {
    # README: quick start, walk-through
    "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python run_classification.py":
        Run("--num_train_epochs 1 --max_steps 4", last_step_only=True, submission="runs/demo"),
    "bash scripts/setup_and_test.sh": Skip("it is .ci/run itself, which is running this test"),
    "bash scripts/download_data.sh data": Skip("downloads the competition archive, which needs the network"),
    "accelerate launch run_classification.py training_args/convnext_base_448.yaml --data_dir data":
        Run(ON_MINI, submission="runs/convnext_base_448"),
    "python run_classification.py training_args/quickdraw100.yaml --num_train_epochs 10":
        Run("--num_train_epochs 1 --max_steps 5 --image_size 32", submission="runs/quickdraw100"),
    "python run_classification.py --model_name_or_path convnext_atto --train_dir data/train --train_csv data/train.csv "
    "--test_dir data/test --test_csv data/test.csv --output_dir runs/flags --do_train --do_eval --do_predict "
    "--num_train_epochs 2 --per_device_train_batch_size 8 --image_size 64":
        Run(f"--train_dir {MINI}/train --train_csv {MINI}/train.csv --test_dir {MINI}/test --test_csv {MINI}/test.csv "
            "--num_train_epochs 1", submission="runs/flags"),
    "python run_classification.py": Run("--num_train_epochs 1 --max_steps 4", submission="runs/demo"),
    "python run_classification.py training_args/quickdraw100.yaml":
        Run("--num_train_epochs 1 --max_steps 5 --image_size 32"),
    "python scripts/score_submission.py runs/quickdraw100/submission.csv ../shared/data/quickdraw100/solution.csv":
        Run(own_process=ONLY_HERE),
    "python scripts/predict.py --model runs/demo data/digits/test --output runs/demo/predictions.csv --top_k 3": Run(),
    # speed
    "python scripts/benchmark.py --out bench.json": Run("--quick"),
    "python scripts/benchmark.py --models convnext_atto@128 --rounds 3 --repeats 5":
        Run("--quick --models test_convnext@32 --rounds 1 --repeats 1 --setups default"),
    "python scripts/benchmark.py --models convnext_atto@128 --setups default":
        Run("--quick --models test_convnext@32"),
    "python scripts/benchmark.py --models convnext_tiny@224":
        Run("--quick --models test_convnext@32 --setups default"),
    # recipes, k-fold, ensembles
    "accelerate launch run_classification.py training_args/convnext_base_448_full.yaml --data_dir data":
        Run(ON_MINI, submission="runs/convnext_base_448_full"),
    "python scripts/train_kfold.py training_args/eva02_large_448_5fold_frozen.yaml 5 --data_dir data": Run(ON_MINI),
    "python scripts/ensemble.py --runs runs/eva02_large_448_5fold_frozen_fold{0,1,2,3,4} --output_dir "
    "runs/eva_ensemble --solution data/solution.csv": Run(f"--solution {MINI}/solution.csv"),
    "python scripts/ensemble.py --runs runs/eva_ensemble runs/convnext_base_448_full --weights 2 1 --method vote "
    "--output_dir runs/mix": Run(),
    # ablation: one row, a few steps, on the small set
    "OMP_NUM_THREADS=1 SEEDS=0 EPOCHS=15 PYTHON=.venv/bin/python scripts/ablation.sh":
        Run("--max_steps 2", env={"ROWS": "baseline", "DATA": MINI, "OUT": "runs/ablation"}),
    "OMP_NUM_THREADS=1 SEEDS=1 EPOCHS=15 PYTHON=.venv/bin/python scripts/ablation.sh":
        Run("--max_steps 2", env={"ROWS": "baseline", "DATA": MINI, "OUT": "runs/ablation"}),
    "DRY_RUN=1 scripts/ablation.sh": Run(),
    # several GPUs and machines
    "accelerate launch --config_file training_args/accelerate/single_gpu.yaml run_classification.py "
    "training_args/<preset>": Skip("needs a GPU"),
    "accelerate launch --config_file training_args/accelerate/multi_gpu.yaml --num_processes 8 run_classification.py "
    "training_args/<preset>": MULTI_GPU,
    "accelerate launch --config_file training_args/accelerate/multi_node.yaml --machine_rank <0 or 1> "
    "--main_process_ip <main machine's IP> run_classification.py training_args/<preset>": MULTI_GPU,
    "accelerate launch --config_file training_args/accelerate/fsdp.yaml run_classification.py training_args/<preset>":
        MULTI_GPU,
    "accelerate launch --config_file training_args/accelerate/cpu_2proc.yaml run_classification.py "
    "training_args/<preset>": Skip("a template (<preset>); tests/test_multiprocess.py runs it with a preset"),
    "torchrun --nproc_per_node 8 run_classification.py training_args/<preset>": MULTI_GPU,
    "torchrun --nnodes 2 --node_rank <0|1> --nproc_per_node 8 --master_addr <IP> --master_port 29500 "
    "run_classification.py training_args/<preset>": MULTI_GPU,
    "python scripts/benchmark_scaling.py": Skip("times 1 and 2 processes for minutes; tests/test_multiprocess.py runs "
                                                "the 2-process setup"),
    # docs/speed.md: the 5-fold workflow at the competition's size
    "python scripts/make_synthetic_data.py --output_dir data/synthetic":
        Run("--num_classes 4 --train_images 40 --test_images 8"),
    "python scripts/benchmark_scale.py --data_dir data/synthetic --output runs/benchmark_scale.json":
        Skip("times 25,000 images for minutes; tests/scripts/test_benchmark_scale.py runs it on a generated set of "
             "108 images, with the tiny model"),
    # Hub
    "python push_to_hub.py --output_dir runs/convnext_base_448 --repo_id your-name/sketch-convnext":
        Run(own_process=HUB),
    "python run_classification.py training_args/convnext_base_448.yaml --push_to_hub true --hub_model_id "
    "your-name/sketch-convnext": Run(ON_MINI + " --output_dir runs/pushed", own_process=HUB),
    # report, demo app
    "python scripts/report.py --run runs/demo": Run(),
    "python scripts/report.py --run runs/quickdraw100": Run(),
    "python scripts/report.py --run runs/quickdraw100 --solution ../shared/data/quickdraw100/solution.csv": Run(),
    "python scripts/demo_app.py --model runs/demo": Serve(),
    "python scripts/fuzz_inputs.py --examples 2000": Run("--examples 20", own_process=ONLY_HERE),
    # docs/finetuning.md
    "python run_classification.py --output_dir runs/demo_scratch --model_name_or_path convnext_atto --image_mean 1 1 1 "
    "--image_std 0.5 0.5 0.5 --num_train_epochs 8": Run("--num_train_epochs 1 --max_steps 3", submission="runs/demo_scratch"),
    "python scripts/score_submission.py runs/demo_scratch/submission.csv data/digits/solution.csv": Run(),
    "python run_classification.py --seed 43 --output_dir runs/demo_seed43":
        Run("--num_train_epochs 1 --max_steps 3", submission="runs/demo_seed43"),
    "python run_classification.py training_args/quickdraw100_finetune.yaml":
        Run("--num_train_epochs 1 --max_steps 3 --image_size 32", submission="runs/quickdraw100_finetune"),
    "python scripts/score_submission.py runs/quickdraw100_finetune/submission.csv "
    "../shared/data/quickdraw100/solution.csv": Run(),
    "EPOCHS=3 OUT=runs/finetune_study_3ep scripts/finetune_study.sh":
        Run("--max_steps 2 --image_size 32", env={"DATA": MINI, "ROWS": "baseline", "SEEDS": "0"}),
    'ROWS=frozen_linear SEEDS="0 1" JOBS=1 scripts/finetune_study.sh':
        Run("--num_train_epochs 1 --max_steps 2 --image_size 32", env={"DATA": MINI, "OUT": "runs/finetune_study"}),
    "python scripts/finetune_benchmark.py --out runs/finetune_benchmark.json":
        Run("--quick", own_process=ONLY_HERE),
    # docs/data.md: the data doctor, then a run that acts on it
    "python scripts/doctor.py --data_dir data --output_dir runs/doctor":  # no model: a random one's label issues
        Run(f"--data_dir {MINI} --skip labels"),  # would leave the next command too few images to validate on
    "accelerate launch run_classification.py training_args/convnext_base_448.yaml --data_dir data --group_duplicates "
    "true --exclude_images runs/doctor/issues.csv": Run(ON_MINI + " --output_dir runs/doctor_advised",
                                                        submission="runs/doctor_advised"),
    # docs/data.md: the doctor measured on a noisy copy, here of quickdraw-mini
    "python scripts/make_noisy_copy.py --source ../shared/data/quickdraw100 --output_dir data/qd100_noisy":
        Run(f"--source {MINI} --label_noise 0.05 --within_class 3 --cross_class 2 --train_test 2"),
    "python scripts/compare_duplicate_detectors.py --noisy_dir data/qd100_noisy --model_name_or_path "
    "../shared/models/tf_efficientnet_lite0.in1k --image_size 128":
        Run("--model_name_or_path test_convnext --image_size 32 --others 20"),
    "python scripts/doctor.py --data_dir data/qd100_noisy --output_dir runs/doctor_noisy --model_name_or_path "
    "../shared/models/tf_efficientnet_lite0.in1k --precision fp32":
        Run("--model_name_or_path test_convnext --image_size 32 --folds 2 --skip quality"),
    "python scripts/score_doctor.py --issues runs/doctor_noisy/issues.csv --injected data/qd100_noisy/injected.csv":
        Run(),
    **dict.fromkeys(DOCTOR_MEASUREMENTS, Skip("fine-tunes quickdraw100 for minutes per run; tests/scripts/"
                                              "test_doctor.py, test_train_kfold.py and test_run_classification_"
                                              "inputs.py run these scripts and options on quickdraw-mini")),
    "python scripts/doctor.py --data_dir data/synthetic --output_dir runs/doctor_synthetic --model_name_or_path "
    "../shared/models/tf_efficientnet_lite0.in1k --image_size 128 --crop_pct 1.0 --precision fp32":
        Skip("examines 25,000 images for minutes; tests/scripts/test_doctor.py runs the doctor on quickdraw-mini"),
}
PYTHON_PLANS = {  # the first line of each Python block
    'from transformers import pipeline\nclassifier = pipeline("image-classification", model="runs/demo")': Run(),
    "from transformers import pipeline\nfrom sketch_train.pipeline import SketchImageClassificationPipeline": Run(),
    'from transformers import pipeline\nclassifier = pipeline("image-classification", model="your-name/sketch-convnext")':
        Run(own_process=HUB),
}


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, also the indented ones inside list items."""
    found = re.findall(r"^( *)```(\w*)\n(.*?)^\1```", text, flags=re.S | re.M)
    return [(language, textwrap.dedent(indent + code).strip()) for indent, language, code in found]


def _shell_lines(code: str) -> list[str]:
    """Commands of a shell block: continuations joined, comments dropped, whitespace collapsed."""
    lines = []
    for line in code.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#(\s.*)?$", "", line).strip()
        if line and not line.startswith("#"):
            lines.append(" ".join(line.split()))
    return lines


def documented_commands() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """([(document, shell command)], [(document, python code)]) in document order."""
    shell, python = [], []
    for document in DOCUMENTS:
        text = document.read_text()
        name = str(document.relative_to(REPO))
        for language, code in _blocks(text):
            if language == "python":
                python.append((name, code))
            elif language in ("bash", "sh", "shell", ""):
                shell += [(name, line) for line in _shell_lines(code)]
        without_blocks = re.sub(r"^( *)```.*?^\1```", "", text, flags=re.S | re.M)
        for span in re.findall(r"`([^`\n]+)`", without_blocks):
            command = ENV_PREFIX.sub("", span)
            if command.startswith(COMMAND_WORDS) and (" " in command or command != span):  # not a bare file name
                shell.append((name, " ".join(span.split())))
    return list(dict.fromkeys(shell)), list(dict.fromkeys(python))


SHELL, PYTHON_BLOCKS = documented_commands()


def _python_key(code: str) -> str:
    return "\n".join(code.splitlines()[:2])


def test_every_documented_command_has_a_plan():
    missing = [f"{doc}: {command}" for doc, command in SHELL if command not in PLANS]
    missing += [f"{doc}: python block starting {_python_key(code)!r}" for doc, code in PYTHON_BLOCKS
                if _python_key(code) not in PYTHON_PLANS]
    assert missing == [], "documented commands without a plan in this test:\n" + "\n".join(missing)
    stale = set(PLANS) - {command for _, command in SHELL}
    assert stale == set(), f"plans for commands no document shows any more: {stale}"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A user's folder: the checkout's files, its .venv, ../shared beside it, a sketch of their own, a local Hub."""
    root = tmp_path_factory.mktemp("user")
    user = root / "sketch-classification"
    user.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in (".git", "runs", "data", ".pytest_cache", "test-artifacts", "bench.json"):
            (user / entry.name).symlink_to(entry)
    (root / "shared").symlink_to(REPO.parent / "shared")
    Image.new("RGB", (64, 64), "white").save(user / "sketch.png")
    with FakeHub(root / "hub", token=TOKEN) as hub:
        home = root / "hf_home"
        venv_bin = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN,
               "HF_HOME": str(home), "HF_TOKEN_PATH": str(home / "token"), "HF_HUB_OFFLINE": "0",
               "HF_HUB_DISABLE_XET": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        yield user, env


# The documents whose commands run here: README.md, and docs/inference.md, which uses what README's commands made
# (runs/demo, runs/quickdraw100). The other pages' commands run in tests/test_docs_commands.py, in a sandbox of their
# own, so that pytest-xdist can run the two files side by side.
AFTER_README = ("README.md", "docs/inference.md")


def _runnable(plans: dict, items: list[tuple[str, str]], key=lambda c: c, readme: bool | None = True) -> list:
    """The planned, not skipped, items of README.md and docs/inference.md (readme=True), the other documents
    (False) or all (None)."""
    return [pytest.param(code, plans[key(code)], id=key(code)[:90]) for document, code in items
            if readme in (None, document in AFTER_README) and not isinstance(plans.get(key(code), Skip("")), Skip)]


def _command_line(command: str, plan: Run | Serve) -> str:
    if isinstance(plan, Run) and plan.last_step_only:
        command = command.split("&&")[-1].strip()
    return f"{command} {plan.append}".strip()


def _check_submission(user: Path, run: str) -> None:
    """submission.csv has one row per test.csv row, in order, with an integer target for each."""
    test_csv = Path(pd.read_json(user / run / "run_summary.json", typ="series")["data"]["test_csv"])
    submission = pd.read_csv(user / run / "submission.csv")
    assert list(submission.columns) == ["ID", "image_path", "target"]
    assert list(submission["image_path"]) == list(pd.read_csv(test_csv)["image_path"])
    assert list(submission["ID"]) == list(range(len(submission)))
    assert submission["target"].dtype.kind == "i"


@pytest.mark.parametrize(("command", "plan"), _runnable(PLANS, SHELL))
def test_documented_shell_command_runs(command, plan, sandbox):
    run_shell_command(command, plan, sandbox)


def run_shell_command(command: str, plan: Run | Serve, sandbox) -> None:
    user, env = sandbox
    line = _command_line(command, plan)
    if isinstance(plan, Serve):
        port, log = free_port(), user.parent / "server.log"
        with open(log, "w") as output:
            process = subprocess.Popen(["bash", "-c", f"exec {line} --port {port}"], cwd=user, env=env,
                                       stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/", process, log)
        finally:
            process.terminate()
            process.wait(timeout=30)
        return
    if _plain_python(line) and not plan.env and not plan.own_process:
        code, output = run_in_worker(line, user, env)
        assert code == 0, f"{line}\n{output[-6000:]}"
    else:
        result = subprocess.run(["bash", "-c", line], cwd=user, env={**env, **plan.env}, capture_output=True,
                                text=True, timeout=plan.timeout)
        assert result.returncode == 0, f"{line}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    if plan.submission:
        _check_submission(user, plan.submission)


PLAIN_PYTHON = re.compile(r"(python3?|\.venv/bin/python) \S+\.py( [^|&;<>(){}$*?\\[\]~`]*)?")


def _plain_python(line: str) -> bool:
    """`python script.py args` with nothing for a shell to expand or chain (quotes are fine: shlex splits them)."""
    return PLAIN_PYTHON.fullmatch(line) is not None


@contextlib.contextmanager
def in_worker(folder: Path, env: dict, argv: list[str]):
    """Yield a buffer that collects stdout and stderr while this process works in `folder` with exactly `env` as its
    environment and `argv` as sys.argv; the worker's folder, environment, argv and torch threads come back after."""
    saved = os.getcwd(), dict(os.environ), sys.argv, torch.get_num_threads()
    output = io.StringIO()
    os.chdir(folder)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = argv
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            yield output
    finally:
        os.chdir(saved[0])
        os.environ.clear()
        os.environ.update(saved[1])
        sys.argv = saved[2]
        torch.set_num_threads(saved[3])


def run_in_worker(line: str, folder: Path, env: dict) -> tuple[int, str]:
    """(exit code, stdout and stderr) of a plain `python script.py args` run as `__main__` in this process."""
    _, script, *args = shlex.split(line)
    with in_worker(folder, env, [script, *args]) as output:
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
    return code, output.getvalue()


# Python blocks (all documents': there are few, and they load what README's commands made) run here
@pytest.mark.parametrize(("code", "plan"), _runnable(PYTHON_PLANS, PYTHON_BLOCKS, key=_python_key, readme=None))
def test_documented_python_block_runs(code, plan, sandbox):
    run_python_block(code, plan, sandbox)


def run_python_block(code: str, plan: Run, sandbox) -> None:
    user, env = sandbox
    if not plan.own_process:  # as a paste into `python` in the checkout, in this worker (see the top)
        with in_worker(user, env, [""]):
            exec(compile(code, "<stdin>", "exec"), {"__name__": "__main__"})
        return
    # Read from stdin, as a paste into `python` in the checkout: the current folder is on sys.path.
    result = subprocess.run([sys.executable, "-"], input=code + "\n", cwd=user, env=env, capture_output=True, text=True,
                            timeout=plan.timeout)
    assert result.returncode == 0, f"{code}\n{result.stderr[-3000:]}"


def test_the_flag_only_command_warns_once_and_trains_when_told_to_remove_columns(sandbox):
    """--remove_unused_columns true would drop the image column the transforms read: one warning, not a crash."""
    user, env = sandbox
    line = (f"python run_classification.py --data_dir {MINI} --output_dir runs/columns --do_train --do_predict "
            f"{TINY} --remove_unused_columns true")
    result = subprocess.run(shlex.split(line), cwd=user, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "remove_unused_columns" in line]
    assert warnings == ["Ignoring --remove_unused_columns true: the transforms need the image column, which it would "
                        "drop; training goes on with it false."]
    assert (user / "runs/columns/submission.csv").is_file()


def test_only_plain_python_commands_run_in_the_worker():
    assert _plain_python("python scripts/report.py --run 'runs/my demo' --solution data/solution.csv")
    for line in ("python scripts/ensemble.py --runs runs/x_fold{0,1} --output_dir y", "python a.py && python b.py",
                 "OMP_NUM_THREADS=1 python a.py", "python a.py > log", "bash scripts/ablation.sh", "python -m pytest"):
        assert not _plain_python(line), line


def test_a_command_in_the_worker_gets_its_folder_and_environment_and_gives_them_back(tmp_path):
    folder, environment = os.getcwd(), dict(os.environ)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/where.py").write_text("import os, sys\nprint(os.getcwd(), os.environ['ONLY_THERE'], sys.argv[1:])\n"
                                                "sys.exit(3)\n")
    code, output = run_in_worker("python scripts/where.py --flag 'a b'", tmp_path, {"ONLY_THERE": "yes"})
    assert (code, output) == (3, f"{tmp_path} yes ['--flag', 'a b']\n")
    assert (os.getcwd(), dict(os.environ)) == (folder, environment)
