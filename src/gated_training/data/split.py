"""The stable train/test split: a row's side follows from its content (or a key column), never a draw.

Each row gets a 64-bit hash of its features (:func:`gated_training.data.tables.row_hashes`: columns
sorted by name, numbers as float64, text as text, so CSV and Parquet agree); a row is a test row
when ``hash / 2**64 < test_size``. The same row therefore lands on the same side in every run:
when today's batch overlaps the data the champion was trained on (an appended table, a
resample), the rows the champion trained on are training rows again, never test rows. The target
is not hashed, so a corrected label does not move its row.

Every deployed version records its rule (:class:`SplitRule`, in ``feature_metadata.json``). The
model gate applies the *champion's* rule to today's test rows and compares the two models only on
the rows the champion held out too (:func:`held_out_by`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from gated_training.data.tables import row_hashes
from gated_training.errors import DataError

METHOD = "content-hash-v1"
SCALE = float(2**64)


@dataclass(frozen=True, kw_only=True)
class SplitRule:
    method: str
    test_size: float
    key: str  # a key column, or "" for the row's content
    columns: list[str]  # the columns hashed, sorted

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: Any) -> "SplitRule | None":
        """The rule a version recorded, or None (deployed before stable splits, or unknown method)."""
        if not isinstance(document, dict) or document.get("method") != METHOD:
            return None
        try:
            return cls(
                method=METHOD,
                test_size=float(document["test_size"]),
                key=str(document.get("key") or ""),
                columns=[str(c) for c in document["columns"]],
            )
        except (KeyError, TypeError, ValueError):
            return None


def rule_for(frame: pd.DataFrame, target: str, test_size: float, key: str = "") -> SplitRule:
    if key:
        if key not in frame.columns:
            raise DataError(
                f"parameter split_key={key!r}: no such column (columns: {', '.join(map(str, frame.columns))[:500]})"
            )
        if key == target:
            raise DataError(f"parameter split_key={key!r} is the target column; name a key column, or leave it empty")
        columns = [key]
    else:
        columns = sorted(str(c) for c in frame.columns if c != target)
    return SplitRule(method=METHOD, test_size=test_size, key=key, columns=columns)


def unit_positions(frame: pd.DataFrame, rule: SplitRule) -> np.ndarray:
    """Each row's place in [0, 1) under the rule."""
    missing = [c for c in rule.columns if c not in frame.columns]
    if missing:
        raise DataError(f"the split rule hashes column(s) {', '.join(missing)}, which the rows lack")
    return row_hashes(frame, rule.columns).astype(np.float64) / SCALE


def in_test_split(frame: pd.DataFrame, rule: SplitRule) -> np.ndarray:
    return unit_positions(frame, rule) < rule.test_size


def held_out_by(frame: pd.DataFrame, rule: SplitRule | None) -> np.ndarray | None:
    """Which of ``frame``'s rows the model with ``rule`` never trained on (None: its rule is unknown
    or cannot be applied, so nothing can be said)."""
    if rule is None or any(c not in frame.columns for c in rule.columns):
        return None
    return in_test_split(frame, rule)
