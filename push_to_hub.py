#!/usr/bin/env python
"""Push a finished run's model to a Hugging Face Hub model repository, with its model card, in one commit.

    python push_to_hub.py --output_dir runs/x --repo_id user/sketch-convnext [--private] [--revision dev]

It uploads what a user of the model needs (config.json, the safetensors weights, a README.md model card built from
the run's files) and the run's metrics and plots; never optimizer states, checkpoint-* folders or training_args.bin.
The token comes from HF_TOKEN or `hf auth login`: there is deliberately no --token flag, so that it never lands in
shell history, logs or saved arguments. A failed push changes nothing locally and says how to run it again.
"""

import argparse
import sys

from sketch_train.hub import DEFAULT_MESSAGE, PushError, push_run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="A finished run_classification.py output folder.")
    parser.add_argument("--repo_id", required=True, help="The Hub model repository, owner/name.")
    parser.add_argument("--private", action="store_true", help="Create the repository private (if it is new).")
    parser.add_argument("--revision", help="Branch to commit to (created from main if missing); default main.")
    parser.add_argument("--commit_message", default=DEFAULT_MESSAGE)
    parser.add_argument("--no_extras", action="store_true", help="Push only the model and its card, not metrics/plots.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        url = push_run(args.output_dir, args.repo_id, args.private, args.revision, args.commit_message,
                       with_extras=not args.no_extras)
    except PushError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Pushed {args.output_dir} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
