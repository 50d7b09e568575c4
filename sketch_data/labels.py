"""Human-readable label names for WordNet ids, looked up offline in timm's ImageNet metadata."""

import re

from timm.data import ImageNetInfo

WORDNET_ID = re.compile(r"^n\d{8}$")


def readable_names(class_names: list[str]) -> list[str]:
    """Map `n04355933` to `sunglass`; names that are not WordNet ids are kept as they are.

    Names stay unique: an ImageNet lemma used by two synsets (e.g. "crane") gets its id appended.
    """
    if not class_names or not all(WORDNET_ID.match(name) for name in class_names):
        return list(class_names)
    descriptions = ImageNetInfo("imagenet-22k").label_descriptions(as_dict=True)
    names = [descriptions.get(wnid, wnid).split(",")[0].strip() for wnid in class_names]
    seen = [n for n in names]
    return [f"{name} ({wnid})" if seen.count(name) > 1 else name for name, wnid in zip(names, class_names)]
