"""Composition of io and the engines into runs that read files and write results.

The study pipeline (study folders, study.yaml, Dask, resume) will build on these per-series runs.
"""

from ._dce import DCE_AIFS, DCE_MODELS, DceRun, run_dce_fit
from ._demo import DemoRun, run_demo
from ._outputs import prepare_out_dir

__all__ = ["DCE_AIFS", "DCE_MODELS", "DceRun", "run_dce_fit", "DemoRun", "run_demo", "prepare_out_dir"]
