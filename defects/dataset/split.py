"""Which split each checked photo goes to: copies kept once, every class split on its own
(stratified), reproducibly from the seed; a source's own splits kept."""

from __future__ import annotations

from collections.abc import Sequence

from defects.dataset.images import CheckedImage
from defects.dataset.manifest import SPLITS
from defects.errors import DataError

# Enough to put one image of every class in each split.
MIN_PER_CLASS = len(SPLITS)


def without_copies(
    kept: list[CheckedImage], given: dict[str, str]
) -> tuple[list[CheckedImage], list[dict[str, str]]]:
    """One image of each content, and the reason every other copy is skipped.

    Byte-identical copies (a photo saved twice, ``IMG_1 (1).jpg``) would land in different
    splits, and a test image the network trained on makes the test figures a lie: one copy
    is kept, in a divided source the one in train before validation before test, else the
    one of the shortest name (the original beside ``IMG_1 (1).jpg``). An image found in two
    classes has no one right label: every copy is skipped."""
    order = {split: rank for rank, split in enumerate(SPLITS)}

    def preference(image: CheckedImage) -> tuple[int, int, str]:
        split = given.get(image.relative, "train")
        return order[split], len(image.relative), image.relative

    by_content: dict[str, list[CheckedImage]] = {}
    for image in sorted(kept, key=preference):
        by_content.setdefault(image.sha256, []).append(image)
    unique: list[CheckedImage] = []
    skipped: list[dict[str, str]] = []
    for copies in by_content.values():
        first, *others = copies
        classes = sorted({image.class_name for image in copies})
        if len(classes) > 1:
            for image in copies:
                elsewhere = ", ".join(c.relative for c in copies if c is not image)
                skipped.append(
                    {
                        "source": image.relative,
                        "reason": f"the same image is in the classes {' and '.join(classes)} "
                        f"({elsewhere})",
                    }
                )
            continue
        unique.append(first)
        skipped += [
            {"source": other.relative, "reason": f"a copy of {first.relative}"} for other in others
        ]
    return unique, skipped


def split_by_class(
    checked: list[CheckedImage], classes: Sequence[str], validation: float, test: float, seed: int
) -> dict[str, str]:
    """Stratified by construction: every class is split on its own with the same fractions."""
    # Imported here: scikit-learn takes a second to import, and only splitting needs it.
    from sklearn.model_selection import train_test_split

    assignment: dict[str, str] = {}
    for name in classes:
        members = sorted(c.relative for c in checked if c.class_name == name)
        if len(members) < MIN_PER_CLASS:
            raise DataError(
                f"The class {name!r} has {len(members)} usable image(s); at least "
                f"{MIN_PER_CLASS} are needed (one each for train, validation and test).",
                hint="Add images to that class, or drop it with --classes.",
            )
        n_test = max(1, round(len(members) * test))
        n_validation = max(1, round(len(members) * validation))
        n_validation = min(n_validation, len(members) - n_test - 1)
        rest, test_part = train_test_split(members, test_size=n_test, random_state=seed)
        train_part, validation_part = train_test_split(
            rest, test_size=n_validation, random_state=seed
        )
        for split, part in zip(SPLITS, (train_part, validation_part, test_part), strict=True):
            for relative in part:
                assignment[relative] = split
    return assignment


def split_given(
    checked: list[CheckedImage],
    classes: Sequence[str],
    given: dict[str, str],
    validation: float,
    test: float,
    seed: int,
) -> dict[str, str]:
    """The splits a divided source gives; a split it lacks (validation, test) is taken
    from each class's train images with its fraction, as :func:`split_by_class` would."""
    from sklearn.model_selection import train_test_split

    assignment = {c.relative: given[c.relative] for c in checked}
    for name in classes:
        for split, fraction in (("test", test), ("validation", validation)):
            if split in given.values():
                continue
            train = sorted(
                c.relative
                for c in checked
                if c.class_name == name and assignment[c.relative] == "train"
            )
            if len(train) < 2:
                break
            count = min(max(1, round(len(train) * fraction)), len(train) - 1)
            _, taken = train_test_split(train, test_size=count, random_state=seed)
            for relative in taken:
                assignment[relative] = split
        for split in SPLITS:
            if not any(assignment[c.relative] == split for c in checked if c.class_name == name):
                raise DataError(
                    f"The class {name!r} has no usable image for the {split} split.",
                    hint="Every class needs images in train/ (two at least when a split is "
                    "taken from it) and in each split folder the source has.",
                )
    return assignment
