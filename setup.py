"""Install the ``slowfast`` package (pure Python; no compilation).

torch is a requirement but is never upgraded when one is already installed: install the build
you want first (``pip install torch==2.13.0`` for the CPU wheel), then ``pip install -e .``.
"""

from setuptools import find_packages, setup


def _torch_requirement() -> list:
    try:
        import torch  # noqa: F401
    except ImportError:
        return ["torch>=2.0"]
    return []  # keep the installed build (CPU or CUDA) as it is


setup(
    name="slowfast",
    version="0.1.0",
    description="PySlowFast-compatible video recognition with progressive training (PGT)",
    python_requires=">=3.9",
    packages=find_packages(exclude=("tests", "benchmarks", "tools", "configs", "projects")),
    install_requires=_torch_requirement()
    + [
        "fvcore>=0.1.5",
        "iopath>=0.1.9",
        "simplejson",
        "av>=10",
        "opencv-python-headless",
        "pandas",
        "tensorboard",
        "scikit-learn",
        "matplotlib",  # tensorboard's validation plots (imported only when enabled)
        "submitit",
        "tqdm",
        "psutil",
        "numpy",
        "PyYAML",
    ],
    extras_require={"dev": ["pytest", "ruff"]},
)
