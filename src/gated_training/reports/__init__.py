"""What people read: the run summary (JSON and Markdown), Markdown as the KFP UI renders it, escaping
of text from the data, and webhook notifications."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.reports.escaping import markdown_text, slack_text
from gated_training.reports.markdown import code, number, number_or_dash, percent, table, value, verdict
from gated_training.reports.notify import (
    ALLOWED_HOSTS_ENV,
    WEBHOOK_ENV,
    check_webhook_url,
    notify_failed_step,
    notify_lines,
    notify_outcome,
)
from gated_training.reports.push import PUSHGATEWAY_ENV, push_monitoring, push_training
from gated_training.reports.summary import (
    TICKET_OUTCOME_FILE,
    RunRecords,
    build_summary,
    check_ticket,
    close_ticket,
    drift_line,
    record_and_notify,
    record_gate,
)

__all__ = [
    "PUSHGATEWAY_ENV",
    "push_monitoring",
    "push_training",
    "ALLOWED_HOSTS_ENV",
    "RunRecords",
    "TICKET_OUTCOME_FILE",
    "WEBHOOK_ENV",
    "build_summary",
    "check_ticket",
    "check_webhook_url",
    "close_ticket",
    "code",
    "drift_line",
    "markdown_text",
    "notify_failed_step",
    "notify_lines",
    "notify_outcome",
    "number",
    "number_or_dash",
    "percent",
    "record_and_notify",
    "record_gate",
    "slack_text",
    "table",
    "value",
    "verdict",
]
