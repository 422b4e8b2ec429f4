"""Put a checked bundle in place: `python -m training` into its output folder, `sml promote` into the function's
model/ folder. Standard library only, so `sml` imports it without torch (tests/unit/test_borders.py).
"""

from collections.abc import Collection
from pathlib import Path


def publish(staging: Path, target: Path, model_files: Collection[str], card_file: str) -> None:
    """Move a checked bundle from `staging` into `target`: at once when `target` is new, else file by file, card last.

    Model files of an older bundle that the new card does not describe (`model_files` not staged) go; any other file
    in `target` stays. `staging` must be on `target`'s file system (a sibling folder), so every move is a rename.
    """
    if not target.exists():
        staging.rename(target)
        return
    # Without its card a folder is no bundle: readers see none while the files are swapped, never a mixed one.
    (target / card_file).unlink(missing_ok=True)
    staged = {path.name for path in staging.iterdir()} - {card_file}
    for name in sorted(staged | set(model_files)):
        if name in staged:
            (staging / name).replace(target / name)
        else:
            (target / name).unlink(missing_ok=True)
    (staging / card_file).replace(target / card_file)
