"""Japanese-first voice-of-customer pipeline: the library behind the `voc` command and the flows.

This package never imports Prefect: flows orchestrate it, it does the work.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voc-pipeline")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
