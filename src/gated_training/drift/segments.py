"""Segments: low-cardinality groups of rows, defined once on the champion's training split and
stored in its reference profile, so later batches are cut the same way.

A *segment feature* is a categorical column with 2 to ``MAX_LEVELS`` levels (missing values are a
level of their own), or a numeric column cut at its reference quartiles (or, with at most
``MAX_LEVELS`` distinct values, at each value). A *segment* is one level of one segment feature
(``sex=female``) or one combination of levels of two of them (``sex=female, housing=own``), among
the ``MAX_PAIR_FEATURES`` segment features with the fewest levels. Cells hold label counts.

Three checks read them:

- the drift gate's **label shift** (:func:`label_shift`): a segment whose label distribution moved
  far beyond sampling noise between the champion's training rows and the batch (Fisher's exact test
  for two classes, chi-squared otherwise, Holm-corrected over every segment tested, and a material
  change in a class's share): a relabelled subgroup changes no feature, so only its labels show it;
- the model gate's **segment flips**: champion and candidate disagreements concentrated in one segment;
- the model gate's **slices** (``slice_by``) use :func:`levels` to cut the test rows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from gated_training.data import is_numeric_feature, label_key

MAX_LEVELS = 12
QUANTILES = 4
MAX_PAIR_FEATURES = 8
MIN_CELL_ROWS = 20  # a segment with fewer rows (reference or batch) is not tested: too little evidence
MISSING = "(missing)"
OTHER = "(other)"
SEPARATOR = ", "


def define(frame: pd.DataFrame, target: str) -> dict[str, Any]:
    """Segment features of ``frame`` (the target left out) and the pairs crossed, in a JSON-able form."""
    features: dict[str, Any] = {}
    for column in frame.columns:
        if column == target:
            continue
        series = frame[column]
        name = str(column)
        if is_numeric_feature(series):
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            distinct = np.unique(values)
            if len(distinct) < 2:
                continue
            if len(distinct) <= MAX_LEVELS:
                features[name] = {"kind": "values", "levels": [float(v) for v in distinct]}
            else:
                edges = np.unique(np.quantile(values, np.linspace(0, 1, QUANTILES + 1)[1:-1]))
                features[name] = {"kind": "bins", "edges": [float(e) for e in edges]}
        else:
            counts = series.value_counts(dropna=False)
            if 2 <= len(counts) <= MAX_LEVELS:
                names = {MISSING if pd.isna(value) else str(value) for value in counts.index.tolist()}
                features[name] = {"kind": "levels", "levels": sorted(names)}
    ranked = sorted(features, key=lambda name: (level_count(features[name]), name))[:MAX_PAIR_FEATURES]
    pairs = [list(pair) for pair in itertools.combinations(sorted(ranked), 2)]
    return {"features": features, "pairs": pairs}


def level_count(definition: dict[str, Any]) -> int:
    if definition["kind"] == "bins":
        return len(definition["edges"]) + 1
    return len(definition["levels"]) + 1  # + other/missing


def _bin_label(edges: list[float], index: int) -> str:
    if index == 0:
        return f"< {edges[0]:.4g}"
    if index == len(edges):
        return f">= {edges[-1]:.4g}"
    return f"[{edges[index - 1]:.4g}, {edges[index]:.4g})"


def level_names(definition: dict[str, Any]) -> list[str]:
    """The names of a segment feature's levels, in code order; the last two are ``(other)`` and ``(missing)``."""
    if definition["kind"] == "levels":
        names = list(definition["levels"])
    elif definition["kind"] == "values":
        names = [f"{v:.6g}" for v in definition["levels"]]
    else:
        names = [_bin_label(definition["edges"], i) for i in range(len(definition["edges"]) + 1)]
    return names + [OTHER, MISSING]


def level_codes(series: pd.Series, definition: dict[str, Any]) -> np.ndarray:
    """Each row's level of one segment feature as an integer code into :func:`level_names` (hashing and
    ``searchsorted``: one pass, whatever the number of levels)."""
    names = level_names(definition)
    other, missing = len(names) - 2, len(names) - 1
    if definition["kind"] == "levels":
        lookup = {name: index for index, name in enumerate(definition["levels"])}
        raw, uniques = pd.factorize(series)  # missing values get -1, which picks the last entry below
        mapped = np.array(
            [lookup.get(str(value), other) for value in uniques.tolist()] + [lookup.get(MISSING, missing)],
            dtype=np.int64,
        )
        return mapped[raw]
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    absent = ~np.isfinite(numbers)
    if definition["kind"] == "values":
        known_values = np.asarray(definition["levels"], dtype=float)
        position = np.clip(np.searchsorted(known_values, np.where(absent, np.inf, numbers)), 0, len(known_values) - 1)
        codes = np.where(known_values[position] == numbers, position, other)
    else:
        codes = np.searchsorted(
            np.asarray(definition["edges"], dtype=float), np.where(absent, 0.0, numbers), side="right"
        )
    return np.where(absent, missing, codes).astype(np.int64)


def levels(series: pd.Series, definition: dict[str, Any]) -> np.ndarray:
    """Each row's level of one segment feature, as text (values outside the reference: ``(other)``)."""
    return np.asarray(level_names(definition), dtype=object)[level_codes(series, definition)]


@dataclass(frozen=True, kw_only=True)
class Cut:
    """One way of cutting rows into segments: one feature, or a pair of them."""

    features: tuple[str, ...]
    names: tuple[list[str], ...]  # level names per feature
    codes: np.ndarray  # each row's cell: a mixed-radix number over the features' level codes

    @property
    def cells(self) -> int:
        total = 1
        for names in self.names:
            total *= len(names)
        return total

    def segment(self, cell: int) -> dict[str, str]:
        """The levels of one cell, by feature."""
        levels_by_feature = {}
        for feature, names in zip(reversed(self.features), reversed(self.names)):
            cell, index = divmod(cell, len(names))
            levels_by_feature[feature] = names[index]
        return dict(reversed(list(levels_by_feature.items())))


def cuts(frame: pd.DataFrame, definitions: dict[str, Any]) -> Iterator[Cut]:
    """Every single-feature and pair cut of ``frame`` that the definitions name and the frame has, singles then
    pairs. A pair's codes are made when it is reached: only the single features' codes are held throughout, a
    byte a row each (29 features and 28 pairs held as int64 at once took 390 MiB at 800k rows)."""
    coded = {}
    for name, definition in definitions["features"].items():
        if name in frame.columns:
            names = level_names(definition)
            # a few levels each: held in the narrowest integer type (one byte a row, not eight)
            coded[name] = (level_codes(frame[name], definition).astype(np.min_scalar_type(len(names))), names)
    for name, (codes, names) in coded.items():
        yield Cut(features=(name,), names=(names,), codes=codes)
    for first, second in definitions.get("pairs", []):
        if first in coded and second in coded:
            (codes_a, names_a), (codes_b, names_b) = coded[first], coded[second]
            pair = codes_a.astype(np.int64) * len(names_b) + codes_b
            yield Cut(features=(first, second), names=(names_a, names_b), codes=pair)


def tallies(
    frame: pd.DataFrame, definitions: dict[str, Any], values: dict[str, np.ndarray]
) -> list[tuple[dict[str, str], int, dict[str, float]]]:
    """Per occupied segment: its levels, its rows, and the sum of each array in ``values`` over its rows
    (``np.bincount`` with weights: one pass per cut)."""
    found = []
    for cut in cuts(frame, definitions):
        rows = np.bincount(cut.codes, minlength=cut.cells)
        sums = {name: np.bincount(cut.codes, weights=array, minlength=cut.cells) for name, array in values.items()}
        for cell in np.flatnonzero(rows):
            found.append((cut.segment(int(cell)), int(rows[cell]), {name: float(s[cell]) for name, s in sums.items()}))
    return found


def label_tallies(
    frame: pd.DataFrame, definitions: dict[str, Any], labels: np.ndarray, classes: list[str]
) -> list[tuple[dict[str, str], dict[str, int]]]:
    """Per occupied segment: its levels and its label counts (one ``bincount`` per cut)."""
    index = {label: code for code, label in enumerate(classes)}
    label_codes = np.fromiter((index[v] for v in labels.tolist()), dtype=np.int64, count=len(labels))
    found = []
    for cut in cuts(frame, definitions):
        counts = np.bincount(cut.codes * len(classes) + label_codes, minlength=cut.cells * len(classes)).reshape(
            cut.cells, len(classes)
        )
        for cell in np.flatnonzero(counts.sum(axis=1)):
            found.append(
                (cut.segment(int(cell)), {classes[k]: int(counts[cell, k]) for k in np.flatnonzero(counts[cell])})
            )
    return found


def cells(frame: pd.DataFrame, definitions: dict[str, Any]) -> list[tuple[dict[str, str], np.ndarray]]:
    """Every occupied segment of ``frame`` as (its levels by feature, a boolean row mask), singles then pairs."""
    return [
        (cut.segment(int(cell)), cut.codes == cell)
        for cut in cuts(frame, definitions)
        for cell in np.flatnonzero(np.bincount(cut.codes, minlength=cut.cells))
    ]


def describe(segment: dict[str, str]) -> str:
    return SEPARATOR.join(f"{name}={level}" for name, level in segment.items())


def key(segment: dict[str, str]) -> str:
    return "\x1f".join(f"{name}\x1e{level}" for name, level in sorted(segment.items()))


def _label_keys(frame: pd.DataFrame, target: str) -> np.ndarray:
    codes, uniques = pd.factorize(frame[target])
    keys = np.array([label_key(value) for value in uniques.tolist()], dtype=object)
    return keys[codes]


def label_profile(frame: pd.DataFrame, target: str) -> dict[str, Any]:
    """The label counts of the reference profile: overall and per segment with enough rows."""
    definitions = define(frame, target)
    labels = _label_keys(frame, target)
    classes = sorted(set(labels.tolist()))
    overall = pd.Series(labels).value_counts().sort_index()
    stored = [
        {"segment": segment, "counts": counts}
        for segment, counts in label_tallies(frame, definitions, labels, classes)
        if sum(counts.values()) >= MIN_CELL_ROWS
    ]
    return {"classes": {str(k): int(v) for k, v in overall.items()}, "definitions": definitions, "cells": stored}


@dataclass(frozen=True, kw_only=True)
class LabelShift:
    segment: str  # "all rows", or "sex=female, housing=own"
    label: str  # the class whose share moved most
    reference_share: float
    batch_share: float
    reference_rows: int
    batch_rows: int
    test: str
    p_value: float
    adjusted_p_value: float  # Holm, over every segment tested
    shifted: bool

    def sentence(self, target: str) -> str:
        return (
            f"label shift in {'the whole batch' if self.segment == 'all rows' else 'segment ' + self.segment}: "
            f"the share of {target}={self.label} went from {self.reference_share:.1%} (champion's training rows, "
            f"n={self.reference_rows}) to {self.batch_share:.1%} (batch, n={self.batch_rows}); {self.test} "
            f"p={self.p_value:.2g}, Holm-adjusted over the segments tested p={self.adjusted_p_value:.2g}"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _test(reference: dict[str, int], batch: dict[str, int]) -> tuple[float, str]:
    from scipy import stats

    labels = sorted(set(reference) | set(batch))
    table = np.array([[reference.get(label, 0) for label in labels], [batch.get(label, 0) for label in labels]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0, "no test (one class)"
    if table.shape[1] == 2:
        return float(stats.fisher_exact(table).pvalue), "Fisher's exact test"
    return float(stats.chi2_contingency(table, correction=False).pvalue), "chi-squared test"


def _largest_move(reference: dict[str, int], batch: dict[str, int]) -> tuple[str, float, float]:
    total_r, total_b = max(sum(reference.values()), 1), max(sum(batch.values()), 1)
    moves = [
        (label, reference.get(label, 0) / total_r, batch.get(label, 0) / total_b)
        for label in sorted(set(reference) | set(batch))
    ]
    return max(moves, key=lambda move: abs(move[2] - move[1]))


def batch_label_tallies(frame: pd.DataFrame, target: str, definitions: dict[str, Any]) -> dict[str, Any]:
    """The batch's label counts, overall and per occupied segment of the champion's definitions: counts that
    add up across chunks of the batch (a Spark partition each, :func:`merge_label_tallies`)."""
    labels = _label_keys(frame, target)
    classes = sorted(set(labels.tolist()))
    return {
        "overall": _counts(labels),
        "cells": {
            key(segment): {"segment": segment, "counts": counts}
            for segment, counts in label_tallies(frame, definitions, labels, classes)
        },
    }


def merge_label_tallies(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        return {label: a.get(label, 0) + b.get(label, 0) for label in sorted(set(a) | set(b))}

    cells = dict(first["cells"])
    for name, cell in second["cells"].items():
        cells[name] = (
            {"segment": cell["segment"], "counts": add(cells[name]["counts"], cell["counts"])}
            if name in cells
            else cell
        )
    return {"overall": add(first["overall"], second["overall"]), "cells": cells}


def label_shift(
    profile: dict[str, Any],
    frame: pd.DataFrame,
    target: str,
    alpha: float,
    min_difference: float,
    drifted_features: Collection[str] = frozenset(),
) -> list[LabelShift]:
    """:func:`label_shift_from_tallies` on ``frame``'s tallies."""
    tallies = batch_label_tallies(frame, target, profile["definitions"])
    return label_shift_from_tallies(profile, tallies, alpha, min_difference, drifted_features)


def label_shift_from_tallies(
    profile: dict[str, Any],
    tallies: dict[str, Any],
    alpha: float,
    min_difference: float,
    drifted_features: Collection[str] = frozenset(),
) -> list[LabelShift]:
    """Every segment tested for a label shift, most shifted first (``shifted`` marks the findings).

    Segments cut by a feature that drifted are left out: their rows are other rows than the
    reference's, so their label shares do not compare (the drift gate reports that feature instead)."""
    reference_cells = {key(cell["segment"]): cell for cell in profile.get("cells", [])}
    candidates: list[tuple[str, dict[str, int], dict[str, int]]] = [
        ("all rows", profile["classes"], tallies["overall"])
    ]
    for name, cell in tallies["cells"].items():
        segment, batch = cell["segment"], cell["counts"]
        reference = reference_cells.get(name)
        if set(segment) & set(drifted_features) or reference is None or sum(batch.values()) < MIN_CELL_ROWS:
            continue
        candidates.append((describe(segment), reference["counts"], batch))
    tested = [(name, reference, batch, *_test(reference, batch)) for name, reference, batch in candidates]
    adjusted = _holm([p for *_, p, _ in tested])
    results = []
    for (name, reference, batch, p_value, test), p_adjusted in zip(tested, adjusted):
        label, before, after = _largest_move(reference, batch)
        results.append(
            LabelShift(
                segment=name,
                label=label,
                reference_share=before,
                batch_share=after,
                reference_rows=int(sum(reference.values())),
                batch_rows=int(sum(batch.values())),
                test=test,
                p_value=p_value,
                adjusted_p_value=p_adjusted,
                shifted=p_adjusted < alpha and abs(after - before) >= min_difference,
            )
        )
    return sorted(results, key=lambda r: (not r.shifted, -abs(r.batch_share - r.reference_share), r.segment))


def _counts(labels: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(labels.astype(str), return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts)}


def _holm(p_values: list[float]) -> list[float]:
    from gated_training.stats import holm

    return holm([p if math.isfinite(p) else 1.0 for p in p_values])
