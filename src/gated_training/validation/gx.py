"""Import Great Expectations quietly: no analytics, no progress bars, no chatter on stderr."""

from __future__ import annotations

import logging
import os
from types import ModuleType


def import_gx() -> ModuleType:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx  # deferred: ~2 s, paid only by steps that validate

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx


def ephemeral_context():  # -> great_expectations.data_context.AbstractDataContext
    gx = import_gx()
    context = gx.get_context(mode="ephemeral")
    # GX shows a tqdm bar per validation; useless in pod logs.
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    return context
