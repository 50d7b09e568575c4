#!/usr/bin/env python
"""Which signal tells copies of a drawing from other drawings: perceptual hashes, thumbnails or backbone embeddings?

    python scripts/compare_duplicate_detectors.py --noisy_dir /tmp/qd100_noisy \\
        --model_name_or_path ../shared/models/tf_efficientnet_lite0.in1k --image_size 128

On a noisy copy (scripts/make_noisy_copy.py) the injected (copy, source) pairs are the positives, and every other pair
among the copies, their sources and --others random training images is a negative. Each signal is taken at its best
dihedral view (sketch_data/duplicates.py):
- hash: imagehash's 64-bit perceptual hash, bits apart (fewer = closer);
- thumbnail: the correlation of 32x32 ink thumbnails;
- embedding: the cosine of the pretrained backbone's pooled features, one image's plain view against each of the
  other's 8 views;
- doctor: what scripts/doctor.py uses, the hash within MAX_DISTANCE bits and the thumbnail at MIN_CORRELATION.
It prints a markdown table: for each signal, the best threshold by F1 with its precision and recall, and how far
apart the least similar copy and the most similar non-copy are.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import torch
from tqdm.auto import tqdm

from sketch_data.duplicates import MAX_DISTANCE, MIN_CORRELATION, best_correlation, fingerprints_of, hash_distances
from sketch_data.images import to_rgb
from sketch_data.transforms import eval_transform
from sketch_train.arguments import ModelArguments
from sketch_train.features import pooled_features
from sketch_train.model import build_model


def subset(noisy_dir: Path, others: int, seed: int) -> tuple[list[str], set[tuple[int, int]]]:
    """The images compared (paths prefixed train/ or test/) and the injected pairs among them, as index pairs."""
    injected = pd.read_csv(noisy_dir / "injected.csv", keep_default_na=False)
    copies = injected[injected["kind"] != "label"]
    train = pd.read_csv(noisy_dir / "train.csv")["image_path"].radd("train/")
    rest = sorted(set(train) - set(copies["image_path"]) - set(copies["related_image_path"]))
    extra = np.random.default_rng(seed).choice(rest, size=min(others, len(rest)), replace=False).tolist()
    images = sorted(set(copies["image_path"]) | set(copies["related_image_path"]) | set(extra))
    index = {path: i for i, path in enumerate(images)}
    return images, {tuple(sorted((index[a], index[b]))) for a, b in zip(copies["image_path"],
                                                                       copies["related_image_path"])}


def dihedral_embeddings(files: list[str], model_name: str, image_size: int | None, batch: int = 32) -> np.ndarray:
    """(images, 8, C) L2-normalised pooled features of the 8 dihedral views of each image."""
    model, processor = build_model(ModelArguments(model_name_or_path=model_name, image_size=image_size), ["any"])
    model.eval()
    to_eval = eval_transform(processor)
    found = []
    for start in tqdm(range(0, len(files), batch), desc="Embedding 8 views of each image", unit="batch"):
        pixels = torch.stack([to_eval(to_rgb(PIL.Image.open(f))) for f in files[start:start + batch]])
        views = [torch.rot90(pixels, k, dims=(2, 3)) for k in range(4)]
        views += [view.transpose(2, 3) for view in views]
        found.append(np.stack([pooled_features(model.timm_model, view) for view in views], axis=1))
    embeddings = np.concatenate(found)
    return embeddings / np.linalg.norm(embeddings, axis=2, keepdims=True)


def best_threshold(similarity: np.ndarray, positive: np.ndarray) -> dict:
    """The threshold (pairs at or above it are called copies) with the best F1, and its precision and recall."""
    order = np.argsort(-similarity, kind="stable")
    hits = np.cumsum(positive[order])
    precision, recall = hits / np.arange(1, len(order) + 1), hits / positive.sum()
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1))
    return {"threshold": float(similarity[order[best]]), "precision": float(precision[best]),
            "recall": float(recall[best]), "least similar copy": float(similarity[positive].min()),
            "most similar non-copy": float(similarity[~positive].max())}


def compare(noisy_dir: Path, model_name: str, image_size: int | None, others: int, seed: int) -> pd.DataFrame:
    images, pairs = subset(noisy_dir, others, seed)
    files = [str(noisy_dir / path) for path in images]
    prints = fingerprints_of(files, desc="Fingerprinting")
    rows, columns = np.triu_indices(len(images), k=1)
    positive = np.array([(int(a), int(b)) in pairs for a, b in zip(rows, columns)])
    distance = hash_distances(prints.hashes, prints.hashes)
    hash_bits = np.minimum(distance, distance.T)[rows, columns]
    thumbnail = best_correlation(prints.thumbnails[rows], prints.thumbnails[columns])
    embeddings = dihedral_embeddings(files, model_name, image_size)
    cosine = np.max([embeddings[:, 0] @ embeddings[:, view].T for view in range(8)], axis=0)
    cosine = np.maximum(cosine, cosine.T)[rows, columns]
    doctor = ((hash_bits <= MAX_DISTANCE) & (thumbnail >= MIN_CORRELATION)).astype(float)
    table = {"hash (minus bits)": best_threshold(-hash_bits.astype(float), positive),
             "thumbnail correlation": best_threshold(thumbnail, positive),
             "embedding cosine": best_threshold(cosine, positive),
             f"doctor: hash <= {MAX_DISTANCE} and thumbnail >= {MIN_CORRELATION}": best_threshold(doctor, positive)}
    frame = pd.DataFrame(table).T.rename_axis("signal").reset_index()
    frame.attrs["counts"] = f"{len(images)} images, {int(positive.sum())} copy pairs, {int((~positive).sum())} others"
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noisy_dir", required=True, type=Path, help="A folder written by make_noisy_copy.py.")
    parser.add_argument("--model_name_or_path", default=ModelArguments.model_name_or_path)
    parser.add_argument("--image_size", type=int)
    parser.add_argument("--others", type=int, default=400, help="Random training images added as non-copies.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.noisy_dir / "injected.csv").is_file():
        print(f"error: {args.noisy_dir / 'injected.csv'} not found: make the folder with scripts/make_noisy_copy.py.",
              file=sys.stderr)
        return 2
    table = compare(args.noisy_dir, args.model_name_or_path, args.image_size, args.others, args.seed)
    print(table.attrs["counts"])
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
