"""A missing value means one thing however it arrives: NaN, None or a JSON null.

Serving stacks (MLServer, KServe's Python server, MLflow) decode a JSON ``null`` in a text column
to ``None``; the fitted imputers read only ``NaN`` as missing, so ``None`` would be encoded as an
unseen category and the row answered differently from the gate. The fitted pipeline's first step
applies :func:`as_nan`, so every server, MLflow and the gate agree.

This module imports nothing from gated_training: it is shipped inside logged MLflow models
(``code_paths``) and referenced by name from skops files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def as_nan(frame: Any) -> Any:
    """``frame`` with every ``None`` in an object or string column replaced by ``NaN``."""
    if not isinstance(frame, pd.DataFrame):
        return frame
    converted = None
    for column in frame.columns:
        series = frame[column]
        if series.dtype == object and series.isna().any():
            if converted is None:
                converted = frame.copy(deep=False)  # copy-on-write: only the columns replaced below are new
            converted[column] = series.where(series.notna(), np.nan)
    return frame if converted is None else converted
