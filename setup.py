from setuptools import find_packages, setup

with open("README.rst", encoding="utf-8") as readme:
    long_description = readme.read()

#: The live viewer.  PySide6-Essentials 6.12.0 crashes Python 3.11 after about
#: 16 k calls of methods returning None; 6.11.3 does not.
GUI = ["pyqtgraph>=0.13.7", "PySide6-Essentials==6.11.3", "qasync>=0.27"]

#: Sensor pipelines: images transformed with Pillow, PostgreSQL as the
#: server store (psycopg 3), Parquet export (pyarrow).  MQTT in is our own
#: client on the reactor (pyrf_blocks.sources.mqtt); paho-mqtt publishes
#: (testing.servers.publish) and is the sensor benchmark's baseline.
SENSORS = ["paho-mqtt>=2.0", "Pillow>=10.0", "psycopg[binary]>=3.1", "pyarrow>=14"]

setup(
    name="pyrf_blocks",
    version="0.1.0",
    description="Processing blocks for RF instrument data, in one Twisted "
                "reactor, over processes or across hosts",
    long_description=long_description,
    long_description_content_type="text/x-rst",
    python_requires=">=3.11",
    packages=find_packages(include=["pyrf_blocks", "pyrf_blocks.*"]),
    install_requires=[
        # tls: pyOpenSSL and service_identity, for ssl: workers and https:// edges.
        "twisted[tls]>=24.3",
        "cryptography>=39",  # reads CA bundles (pyrf_blocks.net.tls); pyOpenSSL's own
        "zope.interface>=6.0",
        "numpy>=1.26",
        "scipy>=1.11",
        "msgpack>=1.0.5",
        "sigmf>=1.2",
        "tqdm>=4.60",
        "ruamel.yaml>=0.18",
        "pydantic>=2.5",
        "treq>=23.11",
        # /metrics of workers and managers (pyrf_blocks.metrics); imported
        # only when metrics are asked for.
        "prometheus_client>=0.17",
    ],
    extras_require={
        "test": [
            "pytest>=8.0",
            "pytest-timeout>=2.3",
            # the suite on every core (pyproject.toml's addopts: -n auto)
            "pytest-xdist>=3.5",
            "hypothesis>=6.100",
            "sphinx>=7.2",
            "pytest-qt>=4.4",
            *GUI,
            "pydot>=2.0",
            # docs/howto/notebook.ipynb, run in a fresh kernel by tests/test_docs.py
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
            *SENSORS,
            "pyFFTW>=0.13",  # both FFT backends are tested
            "numba>=0.60",  # both kernel backends are tested
            "dask[distributed]>=2024.1",  # replay on a LocalCluster
        ],
        "sensors": SENSORS,
        "gui": GUI,
        "docs": ["sphinx>=7.2"],
        # FFTW for fft_block (pyrf_blocks.numerics.fft); pocketfft otherwise.
        "fftw": ["pyFFTW>=0.13"],
        # compiled window multiply and |X|² (pyrf_blocks.numerics.kernels); numpy otherwise.
        "numba": ["numba>=0.60"],
        # pyrf-blocks replay --dask (pyrf_blocks.replay)
        "dask": ["dask[distributed]>=2024.1"],
    },
    entry_points={"console_scripts": ["pyrf-blocks = pyrf_blocks.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Twisted",
        "Topic :: Scientific/Engineering",
    ],
)
