"""Every `--help` line of `python -m training` and `sml` says what the setting does, not just its name."""

import argparse
import re
from collections.abc import Iterator

from sml.cli import build_parser as sml_parser
from training.config_loading import build_parser as training_parser


def options(parser: argparse.ArgumentParser, prog: str) -> Iterator[tuple[str, str, str]]:
    """(command, option, help text) for every option and positional of `parser` and its subcommands."""
    for action in parser._actions:  # argparse keeps its actions only here
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from options(subparser, f"{prog} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield prog, (action.option_strings or [action.dest])[-1], action.help or ""


def explains(option: str, text: str) -> bool:
    """Two words or more beyond the option's own name, once the generated default and choice lists are off."""
    said = re.sub(r"\[default: [^\]]*\]|\(one of: [^)]*\)", " ", text).lower()
    words = set(re.findall(r"[a-z0-9²]+", said)) - {"default", "the", "a", "an", "of"}
    own = set(re.findall(r"[a-z0-9]+", option.lower()))
    return len(words - own) >= 2


def test_every_training_setting_says_what_it_does() -> None:
    vague = [option for _, option, text in options(training_parser(), "training") if not explains(option, text)]

    assert vague == []


def test_every_sml_option_says_what_it_does() -> None:
    vague = [
        f"{prog} {option}: {text!r}"
        for prog, option, text in options(sml_parser(), "sml")
        if not explains(option, text)
    ]

    assert vague == []
