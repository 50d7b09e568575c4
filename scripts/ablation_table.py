#!/usr/bin/env python
"""Tabulate the runs of scripts/ablation.sh: each row's test accuracy over its seeds, against the baseline.

    python scripts/ablation_table.py --dir runs/ablation [--solution ../shared/data/quickdraw100/solution.csv]

Every folder `<row>_seed<k>` in --dir is one run of a row: its submission.csv (or, for a k-fold row, the one in
its `*_ensemble` folder) is scored against --solution. Prints a markdown table (written to --output too):
mean accuracy ± spread, where the spread is half the range over the seeds ((max - min) / 2, so mean ± spread
spans every seed's result), the difference from the baseline's mean, and the mean training time per seed
(train_runtime in all_results.json, summed over the folds of a k-fold row). Folders without a submission yet
(unfinished runs) are named on stderr and left out.
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sketch_train.result_files import submission_accuracy

REPO = Path(__file__).resolve().parent.parent

BASELINE = "baseline"
RUN_FOLDER = re.compile(r"(?P<row>.+)_seed(?P<seed>\d+)")
DEFAULT_SOLUTION = REPO.parent / "shared" / "data" / "quickdraw100" / "solution.csv"
NOTE = ("Test accuracy against solution.csv: mean ± half the range over the seeds ((max - min) / 2). Training time: "
        "train_runtime per seed, summed over the folds of a k-fold row; TTA rows reuse the baseline's models.\n")


class AblationError(Exception):
    """A problem with the ablation's folders, shown to the user as one line."""


@dataclass
class Row:
    """One technique's runs: a test accuracy (and maybe a training time) per seed."""

    name: str
    accuracies: dict[int, float] = field(default_factory=dict)
    train_seconds: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return sum(self.accuracies.values()) / len(self.accuracies)

    @property
    def spread(self) -> float:
        """Half the range over the seeds."""
        return (max(self.accuracies.values()) - min(self.accuracies.values())) / 2


def ablation_rows(folder: Path, solution: Path) -> tuple[list[Row], list[str]]:
    """The rows of the finished runs in `folder` (baseline first, then by name) and the unfinished runs' names."""
    rows: dict[str, Row] = {}
    unfinished = []
    for run in sorted(p for p in folder.iterdir() if p.is_dir() and RUN_FOLDER.fullmatch(p.name)):
        submission = submission_of(run)
        if submission is None:
            unfinished.append(run.name)
            continue
        name, seed = RUN_FOLDER.fullmatch(run.name).group("row", "seed")
        row = rows.setdefault(name, Row(name))
        row.accuracies[int(seed)] = score(submission, solution)
        seconds = train_seconds(run)
        if seconds is not None:
            row.train_seconds.append(seconds)
    if not rows:
        raise AblationError(f"{folder} has no finished run (a <row>_seed<k> folder with a submission.csv); "
                            "run scripts/ablation.sh first.")
    return sorted(rows.values(), key=lambda r: (r.name != BASELINE, r.name)), unfinished


def submission_of(run: Path) -> Path | None:
    """The run's submission.csv, or for a k-fold run its ensemble's; None while the run is unfinished."""
    if (run / "submission.csv").is_file():
        return run / "submission.csv"
    ensembles = sorted(run.glob("*_ensemble/submission.csv"))
    if len(ensembles) > 1:
        raise AblationError(f"{run} holds {len(ensembles)} ensembles ({', '.join(str(e.parent) for e in ensembles)}); "
                            "keep one per run folder.")
    return ensembles[0] if ensembles else None


def train_seconds(run: Path) -> float | None:
    """train_runtime of the run, or the sum over its folds; None when it trained nothing (e.g. a TTA-only run)."""
    results = [run / "all_results.json"]
    if not results[0].is_file():
        results = sorted(run.glob("*_fold*/all_results.json"))
    times = [json.loads(path.read_text()).get("train_runtime") for path in results]
    return sum(times) if times and None not in times else None


def score(submission: Path, solution: Path) -> float:
    try:
        return submission_accuracy(str(submission), str(solution))
    except (ValueError, KeyError, FileNotFoundError) as error:
        raise AblationError(f"cannot score {submission} against {solution}: {error}") from None


def markdown_table(rows: list[Row]) -> str:
    """A column-aligned markdown table; accuracies and differences in percent (points)."""
    baseline = next((row for row in rows if row.name == BASELINE), None)
    header = ["row", "seeds", "test accuracy %", "per seed %", "vs baseline (points)", "train time per seed"]
    lines = [header]
    for row in rows:
        delta = "" if baseline is None or row is baseline else f"{100 * (row.mean - baseline.mean):+.2f}"
        minutes = (f"{sum(row.train_seconds) / len(row.train_seconds) / 60:.1f} min"
                   if len(row.train_seconds) == len(row.accuracies) else "")
        lines.append([row.name, str(len(row.accuracies)), f"{100 * row.mean:.2f} ± {100 * row.spread:.2f}",
                      ", ".join(f"{100 * row.accuracies[seed]:.2f}" for seed in sorted(row.accuracies)),
                      delta or "—", minutes or "—"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = [False, True, True, False, True, True]  # numbers right-aligned, as the separator row tells renderers
    separator = [("-" * (w - 1) + ":") if r else "-" * w for w, r in zip(widths, right)]
    cells = [[cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(line, widths, right)] for line in lines]
    return "\n".join("| " + " | ".join(line) + " |" for line in [cells[0], separator, *cells[1:]]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, type=Path, help="the ablation's folder (OUT of scripts/ablation.sh)")
    parser.add_argument("--solution", type=Path, default=DEFAULT_SOLUTION, help="answer key (ID,image_path,target)")
    parser.add_argument("--output", type=Path, help="markdown file to write (default: DIR/ablation.md)")
    args = parser.parse_args(argv)
    try:
        if not args.dir.is_dir():
            raise AblationError(f"{args.dir} is not a folder; give the OUT folder of scripts/ablation.sh.")
        rows, unfinished = ablation_rows(args.dir, args.solution)
    except AblationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if unfinished:
        print(f"Not finished, left out: {', '.join(unfinished)}", file=sys.stderr)
    table = markdown_table(rows) + "\n" + NOTE
    output = args.output or args.dir / "ablation.md"
    output.write_text(table)
    print(table, end="")
    print(f"Wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
