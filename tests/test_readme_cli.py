"""The docs agree with the code: every `train` option and binarization listed in
docs/training.md, every `larq-irnet` command and make target of README.md real, the docs
index complete and the links of the front pages resolved."""

import argparse
import re
import shlex
from pathlib import Path

from larq_irnet.cli import build_parser
from larq_irnet.zoo import BINARIZATIONS

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_section(heading, page="README.md"):
    text = (ROOT / page).read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def subcommand(name):
    parser = build_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[name]


def train_options_paragraph():
    section = readme_section("## Options", "docs/training.md")
    start = section.index("Options: ")
    return section[start : section.index("\n\n", start)]


def test_the_training_page_lists_every_train_option():
    listed = set(re.findall(r"--[a-z][a-z0-9-]*", train_options_paragraph()))
    options = {
        option
        for action in subcommand("train")._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert options - listed == set(), "docs/training.md's train options miss these"
    assert listed - options == set(), "docs/training.md lists train options the CLI lacks"


def test_the_training_page_lists_every_binarization_of_the_cli():
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


def readme_commands():
    """Every `larq-irnet ...` line of README.md's bash blocks, without comments."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("larq-irnet ")]


def test_every_command_of_the_readme_is_accepted_by_the_cli():
    commands = readme_commands()
    assert {c.split()[1] for c in commands} >= {"convert", "evaluate", "benchmark", "train"}
    for command in commands:
        # `[--int8]` in a synopsis: the option is accepted with and without it.
        argv = shlex.split(command.replace("[", "").replace("]", ""))[1:]
        build_parser().parse_args(argv)


def test_every_make_target_of_the_readme_exists():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    used = set(re.findall(r"^make ([a-z-]+)", text, re.MULTILINE))
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert used >= {"demo", "test", "install"}
    assert {t for t in used if not re.search(rf"^{t}:", makefile, re.MULTILINE)} == set()


def test_the_docs_index_lists_every_page_once():
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md")
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    assert sorted(re.findall(r"^- \[([\w.-]+)\]\(\1\): ", index, re.MULTILINE)) == pages


@pytest.mark.parametrize(
    "page",
    [
        "README.md",
        "docs/README.md",
        "docs/install.md",
        "docs/training.md",
        "docs/usage.md",
        "docs/zoo.md",
    ],
)
def test_relative_links_resolve(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, f"{page} links no page"
    missing = [t for t in local if not ((ROOT / page).parent / t).exists()]
    assert missing == [], f"{page} links to missing files"
