"""Retrains the monitoring pipeline starts, one at a time, each with a ticket it can be held to.

A ticket is a folder under the prediction log, ``model=<service>/retrain/<time>-<id>/``: ``ticket.json`` (when,
why, the data, the monitoring run), the batch it trains on (``batch.parquet``, with the version's suite beside it
as ``batch.expectations.json``) when no ``retrain_data_uri`` is named, and ``outcome.json``, which the training run
writes when it ends (the gate that stops it, or the step that fails: ``reports.close_ticket``).

- A ticket without an outcome, younger than ``retrain_timeout_hours``, is **pending**: no second retrain starts.
- A retrain that ended without deploying (blocked, skipped, failed) holds the next one off for
  ``retrain_cooldown_hours``: the window alerts, naming it, instead of retrying in a loop.
- A ticket older than the timeout without an outcome is reported as **lost** and holds nothing.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from gated_training.data import storage
from gated_training.errors import DataError, RegistryError
from gated_training.predictionlog import store
from gated_training.reports import TICKET_OUTCOME_FILE

TICKET_FILE = "ticket.json"
BATCH_FILE = "batch.parquet"
BATCH_SUITE_FILE = "batch.expectations.json"


@dataclass
class Ticket:
    uri: str
    created: datetime
    document: dict[str, Any]
    outcome: dict[str, Any] | None

    @property
    def ended(self) -> datetime | None:
        if not self.outcome:
            return None
        try:
            return datetime.fromisoformat(str(self.outcome.get("ended"))).astimezone(timezone.utc)
        except ValueError:
            return self.created


def tickets_root(log_uri: str, service: str) -> str:
    return storage.join_uri(log_uri, f"model={store.partition_value(service)}", "retrain")


def read_tickets(log_uri: str, service: str) -> tuple[list[Ticket], list[str]]:
    """Every ticket, oldest first, and what could not be read (named, skipped)."""
    root = tickets_root(log_uri, service)
    tickets, problems = [], []
    for name in storage.list_children(root):
        uri = storage.join_uri(root, name)
        try:
            document = json.loads(storage.read_bytes(storage.join_uri(uri, TICKET_FILE), max_bytes=2**20))
            created = datetime.fromisoformat(document["created"]).astimezone(timezone.utc)
            outcome_uri = storage.join_uri(uri, TICKET_OUTCOME_FILE)
            outcome = (
                json.loads(storage.read_bytes(outcome_uri, max_bytes=2**20)) if storage.exists(outcome_uri) else None
            )
        except (DataError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"retrain ticket {uri}: unreadable, ignored ({str(exc)[:160]})")
            continue
        tickets.append(Ticket(uri=uri, created=created, document=document, outcome=outcome))
    return sorted(tickets, key=lambda t: t.created), problems


def may_retrain(tickets: list[Ticket], now: datetime, cooldown_hours: int, timeout_hours: int) -> tuple[bool, str]:
    """Whether a new retrain may start now, and why not (or what was noticed)."""
    note = ""
    for ticket in reversed(tickets):
        if ticket.outcome is None:
            if now - ticket.created < timedelta(hours=timeout_hours):
                return False, (
                    f"a retrain is pending since {ticket.created.isoformat()} (ticket {ticket.uri}); "
                    "not starting another"
                )
            note = (
                f"the retrain of {ticket.created.isoformat()} has no outcome after {timeout_hours} h (lost: its run "
                "was deleted or never started); it holds nothing"
            )
            continue
        outcome = ticket.outcome
        ended = ticket.ended or ticket.created
        if outcome.get("outcome") != "deployed" and now - ended < timedelta(hours=cooldown_hours):
            why = (outcome.get("reasons") or ["no reason recorded"])[0]
            verdict = outcome.get("outcome")
            if outcome.get("blocked_by"):
                verdict = f"{verdict} by {outcome['blocked_by']}"
            return False, (
                f"the retrain of {ticket.created.isoformat()} ended {verdict} ({str(why)[:300]}); not retried before "
                f"{(ended + timedelta(hours=cooldown_hours)).isoformat()} (retrain_cooldown_hours={cooldown_hours})"
            )
        break
    return True, note


def open_ticket(log_uri: str, service: str, now: datetime, document: dict[str, Any]) -> str:
    """A new ticket folder with its ``ticket.json`` (create-only); returns its URI."""
    name = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"
    uri = storage.join_uri(tickets_root(log_uri, service), name)
    body = {"created": now.isoformat(), **document}
    try:
        storage.write_bytes(storage.join_uri(uri, TICKET_FILE), json.dumps(body, indent=2).encode(), create_only=True)
    except RegistryError as exc:
        raise DataError(f"retrain ticket {uri}: cannot be written: {exc}") from exc
    return uri
