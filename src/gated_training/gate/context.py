"""What the model gate decides on, assembled once: the candidate's, the prior predictor's and the
champion's answers on the same rows, as integer label codes, plus the records of the earlier steps.

Every check (``gate/checks.py``) is a function of one :class:`GateContext`; none of them loads a
model, reads a file or predicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gated_training.config import GateThresholds
from gated_training.gate.metrics import Scores


@dataclass(frozen=True, kw_only=True)
class Answers:
    """One model's answers on a set of rows: predicted label codes, class probabilities (columns in
    the context's label order) and its scores there."""

    codes: np.ndarray
    proba: np.ndarray | None
    scores: Scores


@dataclass(frozen=True, kw_only=True)
class ChampionView:
    """The champion and the candidate on the rows the champion never trained on."""

    version: str
    rows: np.ndarray  # positions in the test split
    y: np.ndarray  # label codes on those rows
    candidate: Answers
    champion: Answers
    note: str
    reference_predictions: dict[str, int] | None = None  # the champion's predictions at deploy time
    segments: dict[str, Any] | None = None  # its reference profile's segment definitions


@dataclass(frozen=True, kw_only=True)
class GateContext:
    thresholds: GateThresholds
    labels: list[Any]  # label order of every code below
    y: np.ndarray  # test labels as codes
    candidate: Answers  # on every test row
    baseline: Answers  # the prior predictor on every test row
    features: pd.DataFrame  # the test rows' features the gate reads (slices, segments); on Spark only those
    feature_columns: tuple[str, ...] = ()  # every feature column of the test split (empty: features' columns)
    training: dict[str, Any]  # train-model's report
    metadata: dict[str, Any]  # engineer-features' metadata
    drift: dict[str, Any] | None = None  # check-drift's record
    champion: ChampionView | None = None
    champion_version: str | None = None  # set whenever a champion exists, even when it could not be compared
    champion_problem: str = ""  # why a champion that exists could not be compared
    train_class_counts: dict[str, int] = field(default_factory=dict)
    trained: list[int] = field(default_factory=list)  # codes of the classes the candidate was trained on

    @property
    def classes(self) -> int:
        return len(self.labels)

    @property
    def binary(self) -> bool:
        return self.classes == 2
