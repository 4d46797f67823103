"""larq_irnet.cli: the `larq-irnet` command and its subcommands."""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from larq_irnet import cli

import pytest


def test_every_subcommand_is_registered(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "report", "convert", "evaluate", "demo"):
        assert command in out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "usage: larq-irnet" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bogus"], "larq-irnet: error: argument COMMAND: invalid choice: 'bogus'"),
        (["train", "--seed", "-1"], "larq-irnet train: error: argument --seed: expected an"),
        (["convert"], "larq-irnet convert: error: the following arguments are required"),
        (
            ["train", "--dte-band-fraction", "1"],
            "larq-irnet train: error: argument --dte-band-fraction: expected a number in (0, 1)",
        ),
        (
            ["train", "--dte-band-fraction", "-0.5"],
            "larq-irnet train: error: argument --dte-band-fraction: expected a number in (0, 1)",
        ),
    ],
)
def test_usage_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message) and "usage:" not in err


def test_recipe_override_options_become_recipe_fields():
    from larq_irnet.training import cli as training_cli

    argv = ["train", "--optimizer", "adam", "--learning-rate", "0.01", "--dte-epsilon", "0"]
    args = cli.build_parser().parse_args([*argv, "--dte-band-fraction", "0.5"])
    assert training_cli._recipe_overrides(args) == {
        "optimizer": "adam",
        "learning_rate": 0.01,
        "dte_epsilon": 0.0,
        "dte_band_fraction": 0.5,
    }
    assert training_cli._recipe_overrides(cli.build_parser().parse_args(["train"])) == {}


def test_version(capsys):
    from larq_irnet import __version__

    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"larq-irnet {__version__}"


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


#: TensorFlow's C++ INFO/WARNING start-up lines, which TF_CPP_MIN_LOG_LEVEL=2 hides only
#: when it is set before TensorFlow loads (issue #14, item 8).
INFO_AND_WARNING_LINES = ("oneDNN custom operations", "cpu_feature_guard", "cudart_stub")


@pytest.mark.slow  # a subprocess that imports TensorFlow
@pytest.mark.parametrize("arguments", [["--help"], ["train", "--list-recipes"]])
def test_the_console_script_prints_no_tensorflow_start_up_lines(arguments):
    script = Path(sys.executable).with_name("larq-irnet")
    if not script.is_file():
        pytest.skip(f"no larq-irnet console script beside {sys.executable}")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [str(script), *arguments], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip()
    lines = result.stderr.splitlines()
    assert not [line for line in lines if any(p in line for p in INFO_AND_WARNING_LINES)], lines
    if _installed("tensorflow-cpu") and not _installed("tensorflow"):
        assert lines == []  # `make install`'s stack: nothing at all
