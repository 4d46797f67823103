"""README.md agrees with the command line: every `train` option and binarization listed."""

import argparse
import re
from pathlib import Path

from larq_irnet.cli import build_parser
from larq_irnet.zoo import BINARIZATIONS

ROOT = Path(__file__).resolve().parents[1]


def readme_section(heading):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def subcommand(name):
    parser = build_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[name]


def train_options_paragraph():
    section = readme_section("## Training")
    start = section.index("Options: ")
    return section[start : section.index("\n\n", start)]


def test_the_readme_lists_every_train_option():
    listed = set(re.findall(r"--[a-z][a-z0-9-]*", train_options_paragraph()))
    options = {
        option
        for action in subcommand("train")._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert options - listed == set(), "README's train options miss these"
    assert listed - options == set(), "README lists train options the CLI lacks"


def test_the_readme_lists_every_binarization_of_the_cli():
    listed = re.findall(r"`([a-z_]+)`", train_options_paragraph())
    assert [name for name in listed if name in BINARIZATIONS] == list(BINARIZATIONS)
    help_text = subcommand("train").format_help()
    for name in BINARIZATIONS:
        assert name in help_text


def test_the_development_section_names_the_make_targets_for_tests():
    section = readme_section("## Development")
    assert "`make test`" in section and "`make test-fast`" in section
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^test-fast:", makefile, re.MULTILINE)
