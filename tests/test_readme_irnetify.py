"""The README's "Use IR-Net on your own Larq model" section runs as written.

The block is read from README.md, found by its heading.
"""

import re
from pathlib import Path

import larq_irnet.converters

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Use IR-Net on your own Larq model"


def section_code() -> str:
    """The first python block under HEADING in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert HEADING in text, f"no {HEADING!r} in README.md"
    section = re.split(r"\n## ", text.split(HEADING, 1)[1], maxsplit=1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_irnetify_section_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(section_code(), "README irnetify section", "exec"), namespace)
    report, result = namespace["report"], namespace["result"]
    assert len(report.replaced) == 4 and not report.kept
    assert result.report.op_histogram["LceBconv2d"] == 2 and not result.report.float_layers
    assert (tmp_path / "irnet_model.tflite").read_bytes() == result.flatbuffer
    assert isinstance(result, larq_irnet.converters.ConversionResult)
    out = capsys.readouterr().out
    assert "SteSign -> LibraPB, WeightClip dropped" in out and "LceBconv2d" in out
