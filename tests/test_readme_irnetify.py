"""The README's Python blocks run as written, each found by its section's heading.

"Use IR-Net on your own Larq model" runs on its own; the zoo's block and the conversion
block after it run in one namespace, in the order a reader pastes them.
"""

import re
from pathlib import Path

import larq_irnet.converters

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Use IR-Net on your own Larq model"
USAGE = "## Usage: the quantizers and the callback in any Larq layer"
ZOO = "## The model zoo"
CONVERT = "## Converting and the command line"


def section_code(heading: str = HEADING) -> str:
    """The first python block under `heading` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"\n{heading}\n" in text, f"no {heading!r} in README.md"
    section = re.split(r"\n## ", text.split(f"\n{heading}\n", 1)[1], maxsplit=1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run(namespace: dict, heading: str) -> dict:
    exec(compile(section_code(heading), f"README {heading[3:]}", "exec"), namespace)
    return namespace


def test_every_python_block_of_the_readme_is_run_here():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = len(re.findall(r"```python\n", text))
    assert blocks == len({HEADING, USAGE, ZOO, CONVERT})
    for heading in (HEADING, USAGE, ZOO, CONVERT):
        assert section_code(heading)


def test_readme_irnetify_section_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = run({}, HEADING)
    report, result = namespace["report"], namespace["result"]
    assert len(report.replaced) == 4 and not report.kept
    assert result.report.op_histogram["LceBconv2d"] == 2 and not result.report.float_layers
    assert (tmp_path / "irnet_model.tflite").read_bytes() == result.flatbuffer
    assert isinstance(result, larq_irnet.converters.ConversionResult)
    out = capsys.readouterr().out
    assert "SteSign -> LibraPB, WeightClip dropped" in out and "LceBconv2d" in out


def test_readme_usage_section_trains_with_ede_and_converts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = run({}, USAGE)
    assert len(namespace["history"].history["ede_t"]) == 2
    assert b"LceBconv2d" in namespace["flatbuffer"]


@pytest.mark.slow  # three ResNet-20s and three conversions
def test_readme_zoo_and_conversion_sections_run_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = run(run({}, ZOO), CONVERT)
    assert namespace["irnet"].count_params() == namespace["dirnet"].count_params()
    result, int8 = namespace["result"], namespace["int8"]
    assert result.report.op_histogram["LceBconv2d"] == 18
    assert (tmp_path / "model.tflite").read_bytes() == result.flatbuffer
    assert int8.report.op_histogram["LceBconv2d"] == 18
    assert "'dirnet_act'" in capsys.readouterr().out
