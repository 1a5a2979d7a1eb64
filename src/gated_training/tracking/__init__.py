"""MLflow: tracking URIs (scoped, credentials kept out of records), experiments, the gate on the training
run, outcome tags, the champion mirror, and the models-from-code pyfunc (``mlflow_model.py``)."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.tracking import runs
from gated_training.tracking.runs import (
    CHAMPION_ALIAS,
    log_monitoring,
    mirror_to_mlflow,
    outcome_failed_on_error,
    resolve_tracking_uri,
    tag_outcome,
    without_credentials,
)

# mlflow_model is listed but imported only where it is used: importing it imports MLflow (seconds).
__all__ = [
    "CHAMPION_ALIAS",
    "log_monitoring",
    "mirror_to_mlflow",
    "mlflow_model",
    "outcome_failed_on_error",
    "resolve_tracking_uri",
    "runs",
    "tag_outcome",
    "without_credentials",
]
