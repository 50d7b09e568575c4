"""sketch_data/duplicates.py: copies found through flips, rotations, re-encodes and rescales; others not; clusters;
the fingerprints cached per set of files."""

from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from sketch_data import duplicates
from sketch_data.duplicates import DIHEDRAL, clusters_of, duplicate_groups, find_copies, fingerprints_of


def _sketches(quickdraw_mini: Path) -> list[Path]:
    """Eight real drawings, each of another class or another drawing of one."""
    return sorted((quickdraw_mini / "train").glob("*/*.JPEG"))[::10]


def _copy(source: Path, target: Path, transpose, scale: float, quality: int) -> Path:
    image = PIL.Image.open(source).convert("L")
    image = image if transpose is None else image.transpose(transpose)
    image = image.resize((round(image.width * scale), round(image.height * scale)), PIL.Image.Resampling.BILINEAR)
    image.save(target, quality=quality)
    return target


@pytest.fixture(scope="module")
def copies(quickdraw_mini, tmp_path_factory) -> tuple[list[str], list[tuple[int, int]]]:
    """The eight drawings, then a copy of each under another dihedral view, scale and JPEG quality: (files, pairs)."""
    folder = tmp_path_factory.mktemp("copies")
    originals = _sketches(quickdraw_mini)
    made = [_copy(source, folder / f"{i}.jpg", DIHEDRAL[i], [0.8, 1.0, 1.25, 0.9][i % 4], 60 + 5 * i)
            for i, source in enumerate(originals)]
    return [str(f) for f in originals + made], [(i, i + len(originals)) for i in range(len(originals))]


def test_every_dihedral_copy_rescaled_and_re_encoded_is_found_and_nothing_else(copies, tmp_path):
    files, pairs = copies
    found = find_copies(fingerprints_of(files, cache_dir=tmp_path))
    assert sorted(map(tuple, found.pairs.tolist())) == pairs
    assert (found.scores >= duplicates.MIN_CORRELATION).all() and (found.scores <= 1.0001).all()


def test_clusters_join_copies_of_copies(copies, tmp_path):
    files, pairs = copies
    prints = fingerprints_of(files + [files[8]], cache_dir=tmp_path)  # a third copy of drawing 0, via its copy
    cluster = clusters_of(find_copies(prints), len(files) + 1)
    assert cluster[0] == cluster[8] == cluster[16]
    assert len(set(cluster)) == len(files) - len(pairs)


def test_copies_between_two_sets_are_indexed_in_each(copies, tmp_path):
    files, pairs = copies
    first, second = fingerprints_of(files[:8], cache_dir=tmp_path), fingerprints_of(files[8:][::-1], cache_dir=tmp_path)
    found = find_copies(first, second)
    assert sorted(map(tuple, found.pairs.tolist())) == [(i, 7 - i) for i in range(8)]


def test_fingerprints_are_made_once_per_set_of_files(copies, tmp_path, monkeypatch):
    files, _ = copies
    first = fingerprints_of(files, cache_dir=tmp_path)
    monkeypatch.setattr(duplicates, "fingerprint", lambda file: pytest.fail(f"{file} fingerprinted again"))
    again = fingerprints_of(files, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.hashes, again.hashes)
    np.testing.assert_array_equal(first.thumbnails, again.thumbnails)


def test_a_changed_file_is_fingerprinted_again(copies, tmp_path):
    files, _ = copies
    folder = tmp_path / "files"
    folder.mkdir()
    local = [folder / Path(f).name.replace(".JPEG", f"_{i}.jpg") for i, f in enumerate(files[:3])]
    for source, target in zip(files, local):
        target.write_bytes(Path(source).read_bytes())
    before = fingerprints_of([str(f) for f in local], cache_dir=tmp_path)
    _copy(Path(files[5]), local[0], None, 1.0, 90)  # another drawing under the same name
    after = fingerprints_of([str(f) for f in local], cache_dir=tmp_path)
    assert (before.hashes[0] != after.hashes[0]).any()
    np.testing.assert_array_equal(before.hashes[1:], after.hashes[1:])


def test_duplicate_groups_give_copies_one_group(copies):
    files, pairs = copies
    groups = duplicate_groups(files)
    assert all(groups[i] == groups[j] for i, j in pairs)
    assert len(set(groups)) == len(pairs)
