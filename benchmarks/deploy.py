"""Size and single-thread latency of IR-Net through LCE vs FP32 vs plain ste_sign.

The same as `larq-irnet benchmark`; see larq_irnet/converters/benchmark.py and
docs/deploy.md.

    python benchmarks/deploy.py --models resnet18,resnet20 --repeats 15 \
        --output benchmarks/deploy.json
    python benchmarks/deploy.py --tiny --repeats 10 --output /tmp/tiny.json
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq_irnet  # noqa: E402, F401  (first: selects Keras 2, registers the quantizers)
from larq_irnet.converters.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
