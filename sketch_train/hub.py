"""Push a finished run's model to a Hugging Face Hub model repository, with its model card, in one commit.

What is pushed is what a user of the model needs (config.json, the safetensors weights, a README.md model card built
from the run's files) and the run's metrics and plots; never optimizer states, checkpoint-* folders or
training_args.bin. The token comes from HF_TOKEN or `hf auth login`, never a flag (SketchTrainingArguments refuses
--hub_token). A failed push changes nothing locally and says how to run it again.
"""

import shlex
from pathlib import Path

import httpx2  # huggingface_hub's HTTP client: its transport errors are network failures
from huggingface_hub import CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import filter_repo_objects

from .model_card import build_model_card

WEIGHTS = ["model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json"]
MODEL_FILES = ["config.json", "preprocessor_config.json", *WEIGHTS]
EXTRA_FILES = ["all_results.json", "train_results.json", "eval_results.json", "*.png"]
UNSAFE_WEIGHTS = ["*.bin", "*.pt", "*.pth", "*.ckpt"]  # pickles: loading them can run code
DEFAULT_MESSAGE = "Upload sketch classifier trained with run_classification.py"


class PushError(RuntimeError):
    """A push that cannot start or did not complete; the message is one line for the user."""


def push_run(output_dir: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
             commit_message: str = DEFAULT_MESSAGE, with_extras: bool = True) -> str:
    """Create `repo_id` if needed and commit the run's model, card, metrics and plots to it; returns the commit URL."""
    folder = Path(output_dir)
    names = files_to_push(folder, with_extras)
    if get_token() is None:
        raise PushError(f"no Hugging Face token to push {folder} to {repo_id}: set HF_TOKEN or run `hf auth login`.")
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=folder / name) for name in names]
    card = build_model_card(folder, repo_id)
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision).commit_url
    except Exception as error:
        failure = hub_failure(error)
        if failure is None:
            raise
        again = shlex.join(["python", "push_to_hub.py", "--output_dir", str(folder), "--repo_id", repo_id,
                            *(["--private"] if private else []), *(["--revision", revision] if revision else []),
                            *([] if with_extras else ["--no_extras"])])
        what, todo = describe(failure, repo_id, api.endpoint)
        raise PushError(f"push of {folder} to {repo_id} failed: {what}; {folder} is untouched. "
                        f"{todo}, then push again with `{again}`.") from error


def files_to_push(folder: Path, with_extras: bool = True) -> list[str]:
    """The top-level files a user of the model needs (never checkpoint-* folders); refuses non-safetensors weights."""
    if not (folder / "config.json").is_file():
        raise PushError(f"{folder} has no config.json: point --output_dir at a finished run_classification.py run.")
    names = sorted(path.name for path in folder.iterdir() if path.is_file())
    if not list(filter_repo_objects(names, allow_patterns=WEIGHTS)):
        pickles = list(filter_repo_objects(names, allow_patterns=UNSAFE_WEIGHTS))
        found = f"only {', '.join(pickles)}" if pickles else "no weights"
        raise PushError(f"{folder} holds {found}, not model.safetensors: only safetensors weights are pushed. "
                        "Save the model with save_safetensors=True (the Trainer default) and push again.")
    return list(filter_repo_objects(names, allow_patterns=MODEL_FILES + (EXTRA_FILES if with_extras else [])))


def hub_failure(error: BaseException | None) -> BaseException | None:
    """The HTTP or network error behind `error` (huggingface_hub wraps upload errors in a RuntimeError)."""
    while error is not None:
        if isinstance(error, (HfHubHTTPError, httpx2.TransportError)):
            return error
        error = error.__cause__ or error.__context__
    return None


def describe(error: BaseException, repo_id: str, endpoint: str) -> tuple[str, str]:
    """What went wrong, and what to do before pushing again."""
    if not isinstance(error, HfHubHTTPError):
        return f"could not reach {endpoint} ({type(error).__name__})", "Check the network connection and HF_ENDPOINT"
    status = error.response.status_code
    if status == 401:
        return ("the Hub refused the token (401 Unauthorized)",
                "Set HF_TOKEN to a token with write access or run `hf auth login`")
    if status == 403:
        return (f"the token may not write to {repo_id.split('/')[0]} (403 Forbidden)",
                "Use a token with write access there (HF_TOKEN or `hf auth login`)")
    if status >= 500:
        return f"the Hub had a server error ({status})", "Wait a few minutes"
    server_message = (error.server_message or "").strip().splitlines()
    return f"the Hub answered {status}" + (f" ({server_message[0]})" if server_message else ""), "Fix that"


def take_over_push(training_args) -> str | None:
    """The repo that `run_classification.py --push_to_hub` pushes to at the end, with the Trainer's own push off.

    The Trainer would create the repo when it is built and push every checkpoint; this project pushes once, the
    final (best) model with its card, through push_run.
    """
    repo_id = training_args.hub_model_id if training_args.push_to_hub else None
    training_args.push_to_hub = False
    return repo_id
