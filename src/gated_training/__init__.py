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

# Nothing phones home unless the user asks for it: MLflow's usage telemetry (DNS lookups and HTTP calls
# on every run, which offline clusters cannot answer) and GX's analytics are off unless these variables
# are set otherwise before the package is imported. Every step, the CLI and the serving runtime import it.
import os as _os

_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
_os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
del _os
