"""The `larq-irnet` command line.

Each subcommand lives beside the code it drives: a module listed in `_COMMAND_MODULES`
defines `add_parser(subparsers, **options)`, which adds its subparser and sets
`func(args) -> int`. The converters sit below the data layer, so this top layer hands
them the dataset loader they evaluate and calibrate on.
"""

from __future__ import annotations

import argparse
import importlib
import sys


def load_split(name: str, data_dir: str | None, split: str) -> tuple:
    """(images, labels) of `split` ("train" or "test") of an in-memory dataset.

    The `LoadSplit` that `larq-irnet convert --int8` and `evaluate` use
    (`larq_irnet.training.data.load_split`: only that split's files are read).
    """
    from larq_irnet.training.data import load_split as load

    return load(name, data_dir, split)


#: Subcommand modules and the options their `add_parser` takes.
_COMMAND_MODULES: tuple[tuple[str, dict], ...] = (
    ("larq_irnet.report", {}),
    ("larq_irnet.training.cli", {}),
    ("larq_irnet.converters.cli", {"load_split": load_split}),
    ("larq_irnet.demo", {}),
)


class _OneLineErrors(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (`larq-irnet train: error:
    argument --seed: ...`), without argparse's usage block before it; `--help` has it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered.

    Subcommand parsers share its class, so every usage error is one line.
    """
    from larq_irnet import __version__

    parser = _OneLineErrors(
        prog="larq-irnet",
        description="Train IR-Net binary networks with Larq and deploy them with LCE.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, options in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers, **options)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `larq-irnet` with `argv` (default `sys.argv[1:]`); returns the exit code.

    The `larq-irnet` console script enters through `larq_irnet_launcher`, which sets
    TensorFlow's log level before this package imports TensorFlow.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
