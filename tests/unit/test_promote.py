"""`sml promote` places a verified bundle into the function, and refuses a bad one without touching the old model."""

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sml.cli import main
from tests.projects import copy_function

ROOT = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) with its sha256."""
    return {str(path.relative_to(folder)): sha256(path) for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def function_dir(tmp_path: Path) -> Path:
    """A copy of functions/predict without its model, so tests never touch the real one."""
    return copy_function(tmp_path)


@pytest.fixture
def promoted(function_dir: Path, tiny_bundle: Path) -> Path:
    """function_dir with the tiny bundle already promoted: the model a refused promote must leave alone."""
    assert main(["promote", str(tiny_bundle), "--function-dir", str(function_dir)]) == 0
    return function_dir


@pytest.fixture
def candidate(tmp_path: Path, tiny_regression_bundle: Path) -> Path:
    """A copy of a different valid bundle, for each test to break in its own way."""
    return Path(shutil.copytree(tiny_regression_bundle, tmp_path / "candidate"))


def edit_card(bundle: Path, change: Callable[[dict[str, Any]], object]) -> None:
    card = json.loads((bundle / "model.json").read_text())
    change(card)
    (bundle / "model.json").write_text(json.dumps(card))


def test_promote_places_model_and_card_with_matching_hashes(function_dir, tiny_bundle, capsys):
    code = main(["promote", str(tiny_bundle), "--function-dir", str(function_dir)])

    model_dir = function_dir / "model"
    card = json.loads((model_dir / "model.json").read_text())
    assert code == 0
    assert sorted(path.name for path in model_dir.iterdir()) == ["model.json", "model.onnx"]
    assert sha256(model_dir / "model.onnx") == sha256(tiny_bundle / "model.onnx") == card["sha256"]
    assert (model_dir / "model.json").read_bytes() == (tiny_bundle / "model.json").read_bytes()
    assert model_dir.stat().st_mode & 0o755 == 0o755  # Lambda's runtime user reads it
    assert [path.name for path in function_dir.iterdir() if path.name.startswith(".")] == []  # no staging left


def test_promote_prints_what_was_promoted_and_the_next_command(function_dir, tiny_bundle, capsys):
    main(["promote", str(tiny_bundle), "--function-dir", str(function_dir)])

    out = capsys.readouterr().out
    card = json.loads((tiny_bundle / "model.json").read_text())
    assert f"promoted {card['name']} {card['version']} (classification)" in out
    assert f"accuracy={card['metrics']['test']['accuracy']:.4g}" in out
    assert out.rstrip().endswith("next: sam build && sam deploy")


def test_promote_replaces_the_previous_model_and_keeps_other_files(promoted, candidate, capsys):
    (promoted / "model" / ".gitignore").write_text("*.onnx\n")
    old_card = json.loads((promoted / "model" / "model.json").read_text())

    code = main(["promote", str(candidate), "--function-dir", str(promoted)])

    assert code == 0
    assert snapshot(promoted / "model") == snapshot(candidate) | {
        ".gitignore": sha256(promoted / "model" / ".gitignore")
    }
    assert f"replaced: {old_card['name']} {old_card['version']}" in capsys.readouterr().out


def test_promote_places_the_int8_model_when_the_card_records_it(function_dir, candidate):
    shutil.copy(candidate / "model.onnx", candidate / "model.int8.onnx")
    edit_card(candidate, lambda card: card.update(int8={"kept": True, "sha256": sha256(candidate / "model.onnx")}))

    assert main(["promote", str(candidate), "--function-dir", str(function_dir)]) == 0
    assert sha256(function_dir / "model" / "model.int8.onnx") == sha256(candidate / "model.int8.onnx")


def test_promote_removes_an_int8_model_the_new_card_does_not_record(function_dir, candidate, tiny_bundle):
    shutil.copy(candidate / "model.onnx", candidate / "model.int8.onnx")
    edit_card(candidate, lambda card: card.update(int8={"kept": True, "sha256": sha256(candidate / "model.onnx")}))
    assert main(["promote", str(candidate), "--function-dir", str(function_dir)]) == 0

    assert main(["promote", str(tiny_bundle), "--function-dir", str(function_dir)]) == 0
    assert snapshot(function_dir / "model") == snapshot(tiny_bundle)


def link_source_file(bundle: Path) -> None:
    """model.onnx replaced by a link to an identical file outside the bundle: promote's copy would follow it."""
    target = bundle.parent / "elsewhere.onnx"
    shutil.move(bundle / "model.onnx", target)
    (bundle / "model.onnx").symlink_to(target)


def changed_int8(bundle: Path) -> None:
    shutil.copy(bundle / "model.onnx", bundle / "model.int8.onnx")
    edit_card(bundle, lambda card: card.update(int8={"sha256": "0" * 64}))


# What promote itself owns: reading the source and the int8 file. Broken cards and models, which the
# function's loader refuses for promote, are tests/unit/test_bundle_corpus.py's corpus.
REFUSALS = {
    "int8 without hash": (lambda b: shutil.copy(b / "model.onnx", b / "model.int8.onnx"), "no int8.sha256"),
    "int8 changed": (changed_int8, "does not match the card's int8.sha256"),
    "no card": (lambda b: (b / "model.json").unlink(), "is not a bundle"),
    "source model.onnx a link": (link_source_file, "is a symbolic link"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_promote_refuses_a_bad_bundle_and_leaves_the_old_model(promoted, candidate, capsys, case):
    break_bundle, message = REFUSALS[case]
    break_bundle(candidate)
    before = snapshot(promoted)

    code = main(["promote", str(candidate), "--function-dir", str(promoted)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("sml: error: ") and err.count("\n") == 1
    assert message in err
    assert snapshot(promoted) == before  # the old model, byte for byte, and no staging folder left


def test_promote_accepts_sample_outputs_within_tolerance(function_dir, candidate):
    # 1e-4, relative above 1: what onnxruntime builds on two machines may differ by (functions/predict/model.py)
    edit_card(
        candidate, lambda card: card["sample"].update(outputs=[v * (1 + 5e-5) for v in card["sample"]["outputs"]])
    )

    assert main(["promote", str(candidate), "--function-dir", str(function_dir)]) == 0


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("missing-bundle", "functions/predict", "bundle folder missing-bundle not found"),
        ("bundle", "missing-function", "function folder missing-function not found; pass --function-dir"),
    ],
)
def test_promote_user_mistake_is_one_line_and_exit_2(
    tmp_path, function_dir, tiny_bundle, capsys, monkeypatch, source, target, message
):
    shutil.copytree(tiny_bundle, tmp_path / "bundle")
    monkeypatch.chdir(tmp_path)

    code = main(["promote", source, "--function-dir", target])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("sml: error: ") and err.count("\n") == 1 and message in err
    assert not (function_dir / "model").exists()


def dry_run_bundle(candidate: Path) -> Path:
    edit_card(candidate, lambda card: card["training"].setdefault("config", {}).update(dry_run=True))
    return candidate


def test_promote_refuses_a_dry_run_bundle_and_leaves_the_served_one(promoted, candidate, capsys):
    before = snapshot(promoted)

    code = main(["promote", str(dry_run_bundle(candidate)), "--function-dir", str(promoted)])

    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "--dry-run bundle" in line and "--force" in line
    assert snapshot(promoted) == before


def test_promote_force_serves_a_dry_run_bundle_and_says_so(function_dir, candidate, capsys):
    code = main(["promote", str(dry_run_bundle(candidate)), "--function-dir", str(function_dir), "--force"])

    assert code == 0
    assert sha256(function_dir / "model" / "model.onnx") == sha256(candidate / "model.onnx")
    assert "warning: a --dry-run bundle" in capsys.readouterr().out
