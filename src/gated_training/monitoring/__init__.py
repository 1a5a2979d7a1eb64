"""Monitoring what the champion serves: late labels (``labels``), realized and estimated performance
(``performance``), one window's findings and outcome (``window``), the retrain tickets that keep retrains one at a
time (``retrain``), the window's reports (``report``), and a canary judged on live evidence (``canary``, with what
Prometheus measured: ``live``)."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.monitoring.canary import (
    CanaryWindow,
    Evidence,
    Side,
    action_for,
    healthy_in_a_row,
    judge,
    read_history,
    write_judgement,
)
from gated_training.monitoring.labels import CLOCK_SKEW, Joined, Labels, join_labels, read_labels
from gated_training.monitoring.live import Live, read_live
from gated_training.monitoring.performance import Estimated, Realized, estimated, realized
from gated_training.monitoring.report import HEADLINES, render_html, render_markdown
from gated_training.monitoring.retrain import (
    BATCH_FILE,
    BATCH_SUITE_FILE,
    TICKET_FILE,
    Ticket,
    may_retrain,
    open_ticket,
    read_tickets,
    tickets_root,
)
from gated_training.monitoring.window import LEVELS, OUTCOMES, Finding, MonitoringOutcome, VersionWindow, decide

__all__ = [
    "CanaryWindow",
    "Evidence",
    "Live",
    "Side",
    "action_for",
    "healthy_in_a_row",
    "judge",
    "read_history",
    "read_live",
    "write_judgement",
    "BATCH_FILE",
    "BATCH_SUITE_FILE",
    "CLOCK_SKEW",
    "Estimated",
    "Finding",
    "HEADLINES",
    "Joined",
    "LEVELS",
    "Labels",
    "MonitoringOutcome",
    "OUTCOMES",
    "Realized",
    "TICKET_FILE",
    "Ticket",
    "VersionWindow",
    "decide",
    "estimated",
    "join_labels",
    "may_retrain",
    "open_ticket",
    "read_labels",
    "read_tickets",
    "realized",
    "render_html",
    "render_markdown",
    "tickets_root",
]
