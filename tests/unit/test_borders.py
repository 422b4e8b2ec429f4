"""The borders of the tree: what may import what, and what the training image holds.

- nothing under functions/ imports `training` or `sml` (the function ships alone, with its layer);
- `training` never imports `sml` (the training image holds training/ only);
- `sml` imports only the torch-free, pandas-free modules of `training` (a user's machine has neither).
"""

import ast
import subprocess
import sys
from pathlib import Path

from tests.unit.test_dockerfile import arguments_of

REPO = Path(__file__).resolve().parents[2]


def imported_packages(folder: Path) -> dict[str, set[str]]:
    """The top-level package of every absolute import in every module under `folder`, by module path."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


def sml_modules() -> list[str]:
    paths = sorted((REPO / "sml").rglob("*.py"))
    return [".".join(path.relative_to(REPO).with_suffix("").parts) for path in paths if path.name != "__main__.py"]


def test_the_function_imports_neither_training_nor_sml() -> None:
    imports = imported_packages(REPO / "functions")

    assert imports, "no modules read under functions/"
    assert {path: names & {"training", "sml"} for path, names in imports.items() if names & {"training", "sml"}} == {}


def test_training_never_imports_sml() -> None:
    imports = imported_packages(REPO / "training")

    assert len(imports) > 10
    assert [path for path, names in imports.items() if "sml" in names] == []


def test_every_sml_module_imports_without_torch_or_pandas() -> None:
    modules = sml_modules()
    # A module set to None in sys.modules cannot be imported: any `import torch` on the way raises ImportError.
    script = (
        "import importlib, sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['pandas'] = None\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(len([name for name in sys.modules if name.startswith('training')]))\n"
    )

    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)

    assert "sml.cli" in modules and "sml.jobs.submit" in modules
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 2  # sml does import training: its contract module and the package itself


def test_the_training_image_does_not_contain_sml() -> None:
    copies = " ".join(arguments_of("COPY")).split()
    runs = " ".join(arguments_of("RUN"))

    assert "training/" in copies
    assert not [source for source in copies if source.rstrip("/") == "sml" or source.startswith("sml/")]
    assert " sml" not in runs
    assert "!sml" not in (REPO / ".dockerignore").read_text().split()  # not even in the build context
