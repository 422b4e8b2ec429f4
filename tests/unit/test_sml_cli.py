"""The `sml` command: help with examples for every subcommand, and one-line errors for usage mistakes."""

import subprocess
import sys

import pytest

from sml.cli import COMMANDS, main
from tests.projects import run_sml


def test_sml_help_lists_every_subcommand_with_an_example():
    result = run_sml("--help")

    assert result.returncode == 0
    for name in ("invoke", "serve", "promote"):
        assert name in result.stdout
        assert f"sml {name} " in result.stdout.split("examples:")[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_sml_subcommand_help_shows_examples(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])

    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "examples:" in out and f"sml {name}" in out.split("examples:")[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["deploy"], "invalid choice: 'deploy'"),
        (["promote"], "the following arguments are required: SOURCE (see `sml promote --help`)"),
        (["serve", "--port", "eighty"], "argument -p/--port: invalid int value: 'eighty'"),
    ],
)
def test_sml_usage_mistake_is_one_line_and_exit_2(args, message):
    result = run_sml(*args)

    assert result.returncode == 2
    assert result.stderr.startswith("sml: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_sml_serve_busy_port_is_a_user_error(tmp_path, capsys):
    import socket

    (tmp_path / "template.yaml").write_text(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: ., Handler: a.b, "
        "Runtime: python3.12, Events: {E: {Type: HttpApi}}}\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code = main(["serve", "--template", str(tmp_path / "template.yaml"), "--port", str(port)])

    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_sml_serve_template_without_routes_is_a_user_error(tmp_path, capsys):
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: ., Handler: a.b, Runtime: python3.12}\n"
    )

    code = main(["serve", "--template", str(tmp_path / "template.yaml")])

    assert code == 2
    assert "has no function with HttpApi or Api events to serve" in capsys.readouterr().err


def test_sml_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "sml", "--help"], capture_output=True, text=True, check=False)

    assert result.returncode == 0 and "promote" in result.stdout


def test_sml_imports_no_torch_even_where_it_reads_training_settings():
    """`sml` runs on a laptop without the training extra: the settings loader it shares with the job is torch-free."""
    script = (
        "import importlib, pkgutil, sys, sml\n"
        "for module in pkgutil.iter_modules(sml.__path__):\n"
        "    if module.name != '__main__':\n"
        "        importlib.import_module(f'sml.{module.name}')\n"
        "print(' '.join(sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'training'))))\n"
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    loaded = result.stdout.split()
    assert "training.config_loading" in loaded, "sml no longer reads settings with the training job's loader"
    assert [name for name in loaded if name.split(".")[0] == "torch"] == []


def test_sml_version_is_the_installed_package_version():
    from importlib.metadata import version

    result = run_sml("--version")

    assert (result.returncode, result.stdout) == (0, f"sml {version('serverless-ml')}\n")
