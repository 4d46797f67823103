"""The `larq-irnet` console script: quiet TensorFlow's C++ start-up log, then run the CLI.

`import larq_irnet` imports TensorFlow, and TensorFlow reads TF_CPP_MIN_LOG_LEVEL once,
when its C++ core loads. So the setting must come before the package is imported, which
`larq_irnet/cli.py` cannot do (its package imports TensorFlow first): this module sits
outside the package for that reason. Level 2 drops TensorFlow's C++ INFO and WARNING
lines (oneDNN, CPU instruction set) and keeps its errors; a value the user exported wins.
With TensorFlow's CPU build (`make install`) the CLI then prints no start-up lines; the
GPU-capable build still prints its CUDA plugin registration lines, which come before any
setting applies (README, "Install").
"""

import os
import sys


def main() -> int:
    """Run `larq-irnet` (`larq_irnet.cli.main`) with TensorFlow's C++ log at level 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from larq_irnet.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
