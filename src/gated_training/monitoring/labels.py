"""Late labels: the tables a data owner drops under ``labels_uri``, read without trusting them, and joined to the
calls they label.

A label table is CSV or Parquet with ``request_id`` (the call's ``Ce-Id``, or the value of ``label_key_header``),
``label``, ``event_time`` (when the outcome became known) and, for a call that sent several rows, ``row`` (0 when
absent). Every file directly under the prefix is read (at most ``MAX_LABEL_FILES``); a file that cannot be read is
skipped and named. What is left out is counted, never silently:

- rows without an id, a label or a time (``incomplete``);
- the same id and row labelled twice alike (``duplicates``: one is kept) or differently (``conflicting``: all left out);
- labels of no call in the window (``other_calls``: older calls, or ids never logged), of a class the model
  does not know (``unseen_class``);
- labels known before their call was made, beyond ``CLOCK_SKEW`` (``before_call``: a clock is wrong, or the id
  was reused), and labels that came later than ``label_delay_hours`` after their call (``late``);
- times without a zone are read as UTC and counted (``naive_times``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from gated_training.data import label_key, storage
from gated_training.errors import DataError

MAX_LABEL_FILES = 10_000
MAX_LABEL_FILE_BYTES = 256 * 2**20
CLOCK_SKEW = timedelta(minutes=5)
COLUMNS = ("request_id", "label", "event_time")


@dataclass
class Labels:
    table: pd.DataFrame  # request_id, row, label (text), event_time (UTC)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_labels(labels_uri: str, end: datetime) -> Labels:
    """Every label table directly under ``labels_uri``, known by ``end``."""
    counts = dict.fromkeys(("files", "unreadable_files", "rows", "incomplete", "naive_times", "after_end"), 0)
    problems: list[str] = []
    frames = []
    names = [n for n in storage.list_files(labels_uri) if n.lower().endswith((".csv", ".parquet"))]
    if len(names) > MAX_LABEL_FILES:
        raise DataError(
            f"labels {labels_uri}: {len(names)} files, more than {MAX_LABEL_FILES}; compact them into fewer tables"
        )
    for name in names:
        uri = storage.join_uri(labels_uri, name)
        counts["files"] += 1
        try:
            raw = storage.read_bytes(uri, max_bytes=MAX_LABEL_FILE_BYTES)
            if name.lower().endswith(".csv"):
                frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, na_values=[""])
            else:
                frame = pd.read_parquet(io.BytesIO(raw))
            missing = [c for c in COLUMNS if c not in frame.columns]
            if missing:
                raise DataError(f"no column(s) {', '.join(missing)} (expected request_id, label, event_time)")
        except (DataError, OSError, ValueError, TypeError) as exc:
            counts["unreadable_files"] += 1
            if len(problems) < 10:
                problems.append(f"{uri}: skipped: {str(exc)[:200]}")
            continue
        frames.append(_normalized(frame, counts))
    table = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"request_id": [], "row": [], "label": [], "event_time": pd.to_datetime([], utc=True)})
    )
    known = table["event_time"] <= pd.Timestamp(end)
    counts["after_end"] = int((~known).sum())
    return Labels(table=table[known].reset_index(drop=True), counts=counts, problems=problems)


def _normalized(frame: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    counts["rows"] += len(frame)
    ids = frame["request_id"].map(lambda v: v if isinstance(v, str) else (None if pd.isna(v) else label_key(v)))
    labels = frame["label"].map(
        lambda v: None if v is None or (not isinstance(v, str) and pd.isna(v)) else label_key(v)
    )
    rows = pd.to_numeric(frame["row"], errors="coerce") if "row" in frame.columns else pd.Series(0, index=frame.index)
    raw_times = frame["event_time"]
    times = pd.to_datetime(raw_times, errors="coerce", utc=True, format="mixed")
    naive = raw_times.map(_naive) & times.notna()
    counts["naive_times"] += int(naive.sum())
    complete = ids.notna() & (ids.str.len() > 0) & labels.notna() & times.notna() & rows.notna() & (rows >= 0)
    complete &= rows.fillna(-1) == rows.fillna(-1).round()
    counts["incomplete"] += int((~complete).sum())
    return pd.DataFrame(
        {
            "request_id": ids[complete].astype(str),
            "row": rows[complete].astype("int64"),
            "label": labels[complete].astype(str),
            "event_time": times[complete],
        }
    )


def _naive(value: Any) -> bool:
    if isinstance(value, str):
        text = value.strip()
        return bool(text) and not (text.endswith(("Z", "z")) or "+" in text[10:] or text[10:].count("-") > 0)
    return isinstance(value, (pd.Timestamp, datetime)) and value.tzinfo is None


@dataclass
class Joined:
    """The calls that got a usable label: their position in the decoded rows and the label's class."""

    positions: list[int]
    labels: list[Any]  # the model's own class values
    counts: dict[str, int] = field(default_factory=dict)


def join_labels(rows: pd.DataFrame, labels: pd.DataFrame, classes: list[Any], delay: timedelta) -> Joined:
    """Join the decoded rows (``key``, ``row``, ``request_time``) with the labels, as the module says."""
    counts = dict.fromkeys(("duplicates", "conflicting", "other_calls", "unseen_class", "before_call", "late"), 0)
    if labels.empty or rows.empty:
        counts["other_calls"] = len(labels)
        return Joined([], [], counts)
    by_class = {label_key(c): c for c in classes}
    distinct = labels.drop_duplicates(subset=["request_id", "row", "label"])
    counts["duplicates"] = len(labels) - len(distinct)
    per_key = distinct.groupby(["request_id", "row"], sort=False)["label"].transform("size")
    conflicting = per_key > 1
    counts["conflicting"] = int(distinct[conflicting][["request_id", "row"]].drop_duplicates().shape[0])
    clean = distinct[~conflicting]
    earliest = clean.sort_values("event_time").drop_duplicates(subset=["request_id", "row"])
    target = rows.reset_index(drop=True)
    target = target.assign(position=range(len(target)))
    merged = target.merge(earliest, left_on=["key", "row"], right_on=["request_id", "row"], how="inner")
    counts["other_calls"] = len(earliest) - len(merged)
    before = merged["event_time"] < merged["request_time"] - CLOCK_SKEW
    late = merged["event_time"] > merged["request_time"] + delay
    unseen = ~merged["label"].isin(by_class)
    counts["before_call"] = int(before.sum())
    counts["late"] = int((late & ~before).sum())
    counts["unseen_class"] = int((unseen & ~before & ~late).sum())
    usable = merged[~before & ~late & ~unseen]
    return Joined(positions=usable["position"].tolist(), labels=[by_class[v] for v in usable["label"]], counts=counts)
