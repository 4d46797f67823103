"""larq-irnet: IR-Net binary neural networks for Larq, deployable with LCE."""

from pathlib import Path

from setuptools import setup

setup(
    name="larq-irnet",
    version="0.1.0",
    description="IR-Net (Libra-PB + EDE) binary neural networks for Larq, deployed with LCE",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    # zoo/ and converters/ sit at the top of the repository but install as subpackages,
    # so nothing named plainly `zoo` lands in site-packages.
    packages=[
        "larq_irnet",
        "larq_irnet.training",
        "larq_irnet.training.data",
        "larq_irnet.zoo",
        "larq_irnet.converters",
    ],
    # The console script's launcher: it sets TensorFlow's log level before the package
    # (which imports TensorFlow) is imported.
    py_modules=["larq_irnet_launcher"],
    package_dir={
        "larq_irnet": "larq_irnet",
        "larq_irnet.zoo": "zoo",
        "larq_irnet.converters": "converters",
    },
    package_data={"larq_irnet.zoo": ["weights/*"]},
    install_requires=[
        # TF 2.15 (built-in Keras 2) to 2.19 with tf-keras; LCE 0.16 converts all of them.
        "tensorflow>=2.15,<2.20",
        "tf-keras>=2.15,<2.20",
        "larq>=0.13.3,<0.15",
        "larq-zoo>=2.4,<3",
        "larq-compute-engine>=0.13,<0.17",
        "tensorflow-datasets>=4.8",
        "numpy>=1.23,<2",
        "protobuf>=3.20,<3.21",
        "matplotlib>=3.7",
    ],
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3", "ruff>=0.6"]},
    entry_points={"console_scripts": ["larq-irnet=larq_irnet_launcher:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
