"""Gated training for tabular classification: validate → features → train → gate → deploy.

Each step is a plain function (paths/URIs and typed config in, plain results out), so it
can be called and tested in-process. The KFP components in ``components/`` are thin
wrappers around these functions.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kfp-gated-training")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
