"""larq_irnet.cli: the `larq-irnet` command and its subcommands."""

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


def test_version(capsys):
    from larq_irnet import __version__

    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"larq-irnet {__version__}"
