"""One vocabulary for what the gates decide and how a run ends, defined once.

Each gate step returns one of its decisions as a plain string (the pipeline's ``dsl.If``
conditions compare it); the JSON records and the registry keep the same strings, so existing
registries stay readable. The summary turns the decisions into a run outcome.
"""

from __future__ import annotations


class DataGate:
    """validate-data's return value."""

    PASSED = "passed"
    BLOCKED = "blocked"


class DriftGate:
    """check-drift's return value, and why a run stopped there."""

    TRAIN = "train"
    SKIP = "skip"
    BLOCK = "block"
    NO_NEW_DATA = "no_new_data"  # reason for SKIP
    DRIFT = "drift"  # reason for BLOCK
    SCHEMA = "schema"  # reason for BLOCK
    LABEL_SHIFT = "label_shift"  # reason for BLOCK: a segment's labels moved (label_shift_action=block)


class ModelGate:
    """evaluate-model's return value, and the check that holds back a retrain_only candidate."""

    DEPLOY = "deploy"
    BLOCK = "block"
    DRIFT_HOLD_CHECK = "drift_action"


class DeployGate:
    """deploy-model's return value: whether serve-model runs after it."""

    SERVE = "serve"  # promoted, and a serving namespace is set
    DONE = "done"


class Outcome:
    """How a run ended (``summary.json``'s ``outcome``)."""

    DEPLOYED = "deployed"
    BLOCKED = "blocked"
    SKIPPED = "skipped"
    FAILED = "failed"
    # Not an end: the summary a gate writes when its run goes on past it (every gate writes one).
    CONTINUED = "continued"


class WindowOutcome:
    """monitor-window's return value: how a monitoring window ended (docs/monitoring.md). Only ``retrain`` starts
    the nested training run."""

    OK = "ok"
    WARN = "warn"
    ALERT = "alert"
    RETRAIN = "retrain"
    NO_TRAFFIC = "no_traffic"
    NO_LABELS_YET = "no_labels_yet"
