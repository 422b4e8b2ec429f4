"""The size of a Lambda package folder: unzipped (Lambda's 250 MB limit) and zipped (50 MB, uploaded directly).

One measure for `make rehearse` (scripts/rehearsal_checks.py), `make bench-serving` (benchmarks/serving_sizes.py)
and the build tests. A file behind a symbolic link counts at its target's size, as a zip of the folder stores it.
"""

import io
import zipfile
from pathlib import Path


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def zipped_size(folder: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                package.write(path, path.relative_to(folder))
    return buffer.tell()
