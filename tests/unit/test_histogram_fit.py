"""HistGradientBoosting fitted from chunks (histogram_fit): the estimator ``fit`` gives on the whole matrix, attribute
for attribute, without ever holding that float64 matrix; what it does not cover it refuses by name."""

from __future__ import annotations

import pickle
import tracemalloc
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from gated_training import histogram_fit

ROWS, WIDTH, CHUNK = 600_000, 10, 25_000  # above the bin mapper's 200k-row sample: the fit draws its sample


def rows(start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a table that is never built whole: numbers, a one-hot pair, a column with gaps."""
    rng = np.random.default_rng(start)
    block = rng.normal(size=(stop - start, WIDTH))
    block[:, 1] = rng.integers(0, 2, stop - start)
    block[:, 2] = 1 - block[:, 1]
    block[rng.random(stop - start) < 0.05, 3] = np.nan
    return block


def labels_of(block: np.ndarray) -> np.ndarray:
    return np.where(block[:, 0] + block[:, 1] > 0.3, "bad", "good")


@pytest.fixture(scope="module")
def split() -> dict[str, Any]:
    """The hold-out: every tenth row, so each chunk mixes both parts and a part's order is not the file's."""
    held = np.zeros(ROWS, dtype=bool)
    held[np.random.default_rng(1).permutation(ROWS)[: ROWS // 10]] = True
    part = held.astype(np.int8)
    place = np.empty(ROWS, dtype=np.int64)
    place[~held] = np.random.default_rng(2).permutation(int((~held).sum()))  # the fit part in a shuffled order
    place[held] = np.arange(int(held.sum()))
    labels = np.concatenate([labels_of(rows(s, min(s + CHUNK, ROWS))) for s in range(0, ROWS, CHUNK)])
    parts = [np.empty(int((part == k).sum()), dtype=object) for k in (0, 1)]
    for k in (0, 1):
        parts[k][place[part == k]] = labels[part == k]
    return {"part": part, "place": place, "labels": [parts[0].astype(str), parts[1].astype(str)]}


def chunks_of(split: dict[str, Any], served: list[int] | None = None) -> histogram_fit.Chunks:
    def chunks(keep: histogram_fit.Keep | None) -> Any:
        for start in range(0, ROWS, CHUNK):
            stop = min(start + CHUNK, ROWS)
            part, place = split["part"][start:stop], split["place"][start:stop]
            wanted = keep(part, place) if keep is not None else np.ones(stop - start, dtype=bool)
            if served is not None:
                served.append(int(wanted.sum()))
            yield rows(start, stop)[wanted], part[wanted], place[wanted]

    return chunks


def whole_parts(split: dict[str, Any]) -> list[np.ndarray]:
    matrix = np.concatenate([rows(s, min(s + CHUNK, ROWS)) for s in range(0, ROWS, CHUNK)])
    out = [np.empty((int((split["part"] == k).sum()), WIDTH)) for k in (0, 1)]
    for k in (0, 1):
        out[k][split["place"][split["part"] == k]] = matrix[split["part"] == k]
    return out


def estimator() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=8, random_state=7, early_stopping=True, categorical_features=None)


def state(model: Any) -> dict[str, bytes]:
    return {name: pickle.dumps(value) for name, value in vars(model).items()}


def test_the_model_is_fits_own_attribute_for_attribute_and_the_float64_matrix_is_never_held(split):
    """The same estimator as ``fit(X, y, X_val=…, y_val=…)`` on the whole matrices (its sample of 200k rows drawn
    with replacement by its seed, the hold-out binned apart). Memory, as Python's allocator traces it: ``fit``'s
    own working memory (its sample, bins, gradients; the matrices were made before the tracing began) plus
    under a quarter of the fit rows' float64 matrix: the chunks' rows, never the matrix (it alone is 4× that)."""
    x_fit, x_val = whole_parts(split)
    matrix_bytes = x_fit.nbytes
    tracemalloc.start()
    plain = estimator().fit(x_fit, split["labels"][0], X_val=x_val, y_val=split["labels"][1])
    fit_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del x_fit, x_val

    served: list[int] = []
    lean = estimator()
    tracemalloc.start()
    histogram_fit.fit_from_chunks(lean, chunks_of(split, served), split["labels"], WIDTH)
    lean_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert lean_peak < fit_peak + 0.25 * matrix_bytes, (
        f"{lean_peak / 2**20:.1f} MiB; fit's own {fit_peak / 2**20:.1f} MiB, the matrix {matrix_bytes / 2**20:.1f} MiB"
    )
    assert state(lean) == state(plain) and "_bin_data" not in vars(lean)
    # The first pass engineered only the sampled rows (about 1 - e^-(200k/540k) of the fit part), the second all.
    sampled, everything = sum(served[: len(served) // 2]), sum(served[len(served) // 2 :])
    assert everything == ROWS and 0.25 * ROWS < sampled < 0.35 * ROWS


def test_without_a_hold_out_and_below_the_sample_every_row_bins_the_edges():
    """One part of fewer rows than the sample: the edges come from every row, as ``fit`` takes them."""
    x = rows(0, 30_000)
    y = labels_of(x)
    plain = HistGradientBoostingClassifier(max_iter=5, random_state=3, early_stopping=False).fit(x, y)
    order = np.random.default_rng(4).permutation(len(x))  # the chunks bring the rows in another order

    def chunks(keep: histogram_fit.Keep | None) -> Any:
        for start in range(0, len(x), 7_000):
            place = order[start : start + 7_000]
            part = np.zeros(len(place), dtype=np.int8)
            wanted = keep(part, place) if keep is not None else slice(None)
            yield x[place][wanted], part[wanted], place[wanted]

    lean = HistGradientBoostingClassifier(max_iter=5, random_state=3, early_stopping=False)
    histogram_fit.fit_from_chunks(lean, chunks, [y], x.shape[1])
    assert state(lean) == state(plain)


def test_what_it_does_not_cover_is_refused_and_the_estimator_keeps_no_trace():
    assert histogram_fit.covers(HistGradientBoostingClassifier())  # "from_dtype": no category in an array
    assert not histogram_fit.covers(HistGradientBoostingClassifier(categorical_features=[True, False]))
    assert not histogram_fit.covers(RandomForestClassifier())
    with pytest.raises(TypeError, match="HistGradientBoostingClassifier with categorical features is not fitted"):
        histogram_fit.fit_from_chunks(
            HistGradientBoostingClassifier(categorical_features=[0]), lambda keep: iter(()), [np.array(["a"])], 1
        )
    x = rows(0, 2_000)
    y = labels_of(x)
    place, part = np.arange(len(x)), np.zeros(len(x), dtype=np.int8)

    narrow = HistGradientBoostingClassifier(max_iter=2)
    with pytest.raises(ValueError, match=r"a chunk of float64 \(2000, 9\) where float64 rows of 10 columns were due"):
        histogram_fit.fit_from_chunks(narrow, lambda keep: iter([(x[:, :9], part, place)]), [y], WIDTH)
    assert "_bin_data" not in vars(narrow)

    short = HistGradientBoostingClassifier(max_iter=2, random_state=0)
    with pytest.raises(ValueError, match="the chunks held 1000 of the 2000 sampled rows"):
        histogram_fit.fit_from_chunks(short, lambda keep: iter([(x[:1000], part[:1000], place[:1000])]), [y], WIDTH)
    assert "_bin_data" not in vars(short)
    short.fit(x, y)  # the estimator the refused fit left fits as a new one would
    assert state(short) == state(HistGradientBoostingClassifier(max_iter=2, random_state=0).fit(x, y))
