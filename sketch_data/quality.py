"""Image-quality issues, found by cleanvision: blank, dark, blurry, odd-sized or odd-shaped images.

cleanvision's checks were made for photographs. Two of them would flag nearly every sketch, since a sketch is a few
dark strokes on white paper: "light" flagged 251 and "low_information" 299 of quickdraw100's first 300 real
sketches at their default thresholds. "light" is left out, and "low_information" keeps only what is far below
every real sketch: they scored 0.19 or more, a blank page 0 (docs/data.md). "grayscale" is left out (sketches
are), and duplicates are sketch_data/duplicates.py's, which also match flips and rotations.
"""

import pandas as pd
from cleanvision import Imagelab

CHECKS = {"dark": {}, "blurry": {}, "odd_aspect_ratio": {}, "odd_size": {}, "low_information": {"threshold": 0.1}}


def quality_issues(files: list[str], num_workers: int = 2) -> pd.DataFrame:
    """One row per flagged image: row (index into `files`), issue, score (low = worse)."""
    lab = Imagelab(filepaths=files)
    lab.find_issues(CHECKS, n_jobs=num_workers, verbose=False)
    table = lab.issues.reset_index(drop=True)
    found = [pd.DataFrame({"row": table.index[table[f"is_{issue}_issue"]], "issue": issue,
                           "score": table[f"{issue}_score"][table[f"is_{issue}_issue"]].to_numpy()})
             for issue in CHECKS]
    return pd.concat(found, ignore_index=True)
