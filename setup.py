"""Build spikeedge: pure-Python packages mapped from the top-level folders plus the
Cython fixed-point kernels.

Folder -> import name (everything lives under the one namespace ``spikeedge``):
    runtime/         -> spikeedge           (engine, contract, model files, CLI)
    cython_kernels/  -> spikeedge.kernels   (compiled kernels + their wrapper)
    sensors/         -> spikeedge.sensors   (sources, encoders, protocol)
    tools/           -> spikeedge.tools     (bench, validation and maintenance tools)

Compile flags are portable by default (they run on aarch64 boards and any x86-64);
set SPIKEEDGE_NATIVE=1 to add -march=native for a build that only runs on this CPU.
"""
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

PACKAGE_DIR = {
    "spikeedge": "runtime",
    "spikeedge.kernels": "cython_kernels",
    "spikeedge.sensors": "sensors",
    "spikeedge.tools": "tools",
    "spikeedge.tools.validate": "tools/validate",
    "spikeedge.apps": "runtime/apps",
}


def _compile_args():
    if sys.platform == "win32":
        return ["/O2"]
    args = ["-O3", "-fno-strict-aliasing"]
    if os.environ.get("SPIKEEDGE_NATIVE", "") not in ("", "0"):
        args.append("-march=native")
    return args


COMPILE_ARGS = _compile_args()

extensions = [
    Extension(
        "spikeedge.kernels._kernels",
        sources=["cython_kernels/_kernels.pyx"],
        include_dirs=[np.get_include(), "cython_kernels"],
        define_macros=[
            ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
            ("SPIKEEDGE_COMPILE_ARGS", '"' + " ".join(COMPILE_ARGS) + '"'),
        ],
        extra_compile_args=COMPILE_ARGS,
    ),
    # Encoder and QRS inner loops: float64 code that must round exactly as NumPy/SciPy do,
    # so no fused multiply-add (GCC contracts by default when the target has FMA, e.g. on
    # aarch64 or with SPIKEEDGE_NATIVE=1)
    Extension(
        "spikeedge.sensors._fastsig",
        sources=["sensors/_fastsig.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=COMPILE_ARGS + ([] if sys.platform == "win32"
                                           else ["-ffp-contract=off"]),
    ),
]

setup(
    name="spikeedge",
    version="0.1.0",
    description="Embedded real-time spiking neural network runtime: fixed-point LIF kernels, "
    "sensor encoders, on-device STDP, Brian2 validation and an edge daemon",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    package_dir=PACKAGE_DIR,
    packages=list(PACKAGE_DIR),
    package_data={"spikeedge.kernels": ["*.pyx", "*.pxd", "*.h"],
                  "spikeedge": ["data/*", "models/*"]},
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
    ),
    install_requires=["numpy>=1.24", "scipy>=1.10", "pyserial>=3.5", "paho-mqtt>=2",
                      "tomli>=1.1; python_version < '3.11'"],
    extras_require={
        "ecg": ["wfdb>=4.1"],
        "audio": ["sounddevice>=0.4"],
        "test": ["pytest>=7", "hypothesis>=6.80", "ruff>=0.4", "cython-lint>=0.16",
                 "wfdb>=4.1", "brian2>=2.6", "numpy<2.4", "matplotlib>=3.6", "nir>=1.0"],
        "validate": ["brian2>=2.6", "numpy<2.4", "matplotlib>=3.6"],
        # surrogate-gradient training (spikeedge train-sg); install a CPU build of torch first
        "train": ["torch>=2.1", "tqdm>=4.60"],
        # NIR graphs (spikeedge nir import/export)
        "nir": ["nir>=1.0"],
        # regenerate the snnTorch NIR fixtures (tools/gen_nir_fixture.py)
        "nir-fixtures": ["nir>=1.0", "snntorch>=1.0", "nirtorch>=2.0"],
    },
    entry_points={"console_scripts": ["spikeedge = spikeedge.cli:main"]},
    zip_safe=False,
)
