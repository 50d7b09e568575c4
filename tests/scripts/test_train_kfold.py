"""scripts/train_kfold.sh: one run per fold into sibling folders, finished folds skipped, then the ensemble."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]

# Stands in for `python run_classification.py ...`: records its arguments and writes a finished run's files.
FAKE_RUN = """
import json, sys
from pathlib import Path
import numpy as np, pandas as pd
args = sys.argv[1:]
out = Path(args[max(i for i, a in enumerate(args) if a == "--output_dir") + 1])  # the last one wins, as in argparse
out.mkdir(parents=True)
(out / "args.json").write_text(json.dumps(args))
fold = int(args[args.index("--fold") + 1])
np.save(out / "test_logits.npy", np.array([[fold, 0.0], [0.0, 1.0]], dtype=np.float32))
pd.DataFrame({"ID": [0, 1], "image_path": ["0.JPEG", "1.JPEG"], "target": [0, 1]}).to_csv(out / "submission.csv", index=False)
(out / "all_results.json").write_text("{}")
"""


def test_folds_train_into_sibling_folders_and_are_ensembled(tmp_path):
    fake = tmp_path / "fake_run.py"
    fake.write_text(FAKE_RUN)
    base = tmp_path / "runs" / "x"
    subprocess.run([sys.executable, str(fake), "--fold", "0", "--output_dir", f"{base}_fold0"], check=True)
    result = subprocess.run(
        ["scripts/train_kfold.sh", "training_args/demo.yaml", "3", "--output_dir", str(base), "--num_train_epochs", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHON": sys.executable, "LAUNCHER": f"{sys.executable} {fake}", "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert f"Fold 0: {base}_fold0 is complete, skipping it." in result.stdout
    for fold in (1, 2):
        args = json.loads((Path(f"{base}_fold{fold}") / "args.json").read_text())
        assert args == [str(REPO / "run_classification.py"), "training_args/demo.yaml", "--output_dir", str(base),
                        "--num_train_epochs", "1", "--num_folds", "3", "--fold", str(fold),
                        "--output_dir", f"{base}_fold{fold}"]
    ensemble = Path(f"{base}_ensemble")
    assert pd.read_csv(ensemble / "submission.csv").image_path.tolist() == ["0.JPEG", "1.JPEG"]
    assert json.loads((ensemble / "ensemble_results.json").read_text())["runs"] == [f"{base}_fold{k}" for k in range(3)]
    assert np.load(ensemble / "test_logits.npy").shape == (2, 2)


def test_bad_flags_stop_before_any_fold(tmp_path):
    result = subprocess.run(["scripts/train_kfold.sh", "training_args/demo.yaml", "2", "--validation_split", "2"],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHON": sys.executable, "LAUNCHER": "false"})
    assert result.returncode != 0
    assert "error: validation_split=2.0: use a fraction in [0, 1)." in result.stderr
    assert "Fold 0" not in result.stdout
