"""HistGradientBoosting fitted from chunks of rows: the model ``fit(X, y, X_val=…, y_val=…)`` gives, without the
float64 matrix ``X`` that ``fit`` holds whole from its first line to its last.

scikit-learn's ``fit`` validates ``X``, bins it and from then on reads only the bins: ``_BinMapper`` fits the bin
edges on at most ``subsample`` rows (200k) drawn with the fit's own seed, then maps every row to one uint8 per
column. On train-model's one-hot matrix at 1M rows that was 409 MiB of float64 held through the whole fit, and
a 102 MiB copy of the sampled rows beside it (the step peaked at 3.8× its input frame).

Here the rows come as float64 chunks from ``chunks(keep)``, which is called twice. The first pass engineers
only the sampled rows (``keep``) and holds as many copies of each as the draw took it, in the order the chunks
bring them (the edges are quantiles, which do not depend on row order); the ``_BinMapper`` that ``fit`` made,
with ``fit``'s seed, fits its edges on them; the second pass bins each chunk into the uint8 matrices. ``fit``
itself runs unchanged on zero-strided stand-ins of the right shape (no memory), with ``_bin_data`` answering
from the bins for the duration of the call only. The estimator is a plain ``HistGradientBoostingClassifier``,
each attribute pickling byte for byte as the one fitted on the whole matrix does (tests/unit/test_histogram_fit.py;
at 1M rows train-model's model file was byte for byte the same), so the artifact, its signing and serving do not
change.

Only for what this covers: a HistGradientBoosting classifier without categorical features (``_preprocess_X``
would fit an encoder on the real ``X``), without sample weights, with numeric chunks.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

# One chunk: its engineered rows (float64), the part each row belongs to (0: the fit rows, 1: the early-stopping
# hold-out) and its position in that part.
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]
# Which rows of a chunk to engineer, from their parts and positions (a boolean mask); None: all of them.
Keep = Callable[[np.ndarray, np.ndarray], np.ndarray]
Chunks = Callable[[Keep | None], Iterable[Chunk]]


def covers(estimator: Any) -> bool:
    """True when ``fit_from_chunks`` fits ``estimator`` as ``fit`` would: no column is a category (``"from_dtype"``
    marks none of an array's)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    categorical = estimator.categorical_features if type(estimator) is HistGradientBoostingClassifier else False
    return categorical is None or (isinstance(categorical, str) and categorical == "from_dtype")


def fit_from_chunks(estimator: Any, chunks: Chunks, labels: list[np.ndarray], width: int) -> None:
    """Fit ``estimator`` on the rows ``chunks()`` yields, ``width`` columns each: ``labels[0]`` are the fit rows'
    labels, ``labels[1]`` (when given) the early-stopping hold-out's, passed to ``fit`` as ``y_val``. After an
    exception from ``chunks()`` the estimator is half fitted, without this module's trace: ``fit`` it again."""
    if not covers(estimator):
        raise TypeError(f"{type(estimator).__name__} with categorical features is not fitted from chunks")
    sizes = [len(part) for part in labels]
    binned: list[np.ndarray] = []

    def bin_data(X: Any, sample_weight: Any, is_training_data: bool) -> np.ndarray:
        if sample_weight is not None:
            raise TypeError("sample weights are not fitted from chunks")
        if is_training_data:
            binned.extend(_bins(estimator._bin_mapper, chunks, sizes, width))
            return binned[0]
        return binned[1]

    stand_ins = [np.broadcast_to(np.zeros((), dtype=np.float64), (size, width)) for size in sizes]
    estimator.__dict__["_bin_data"] = bin_data
    try:
        if len(labels) == 1:
            estimator.fit(stand_ins[0], labels[0])
        else:
            estimator.fit(stand_ins[0], labels[0], X_val=stand_ins[1], y_val=labels[1])
    finally:
        del estimator.__dict__["_bin_data"]
        binned.clear()


def _bins(mapper: Any, chunks: Chunks, sizes: list[int], width: int) -> list[np.ndarray]:
    """Fit ``mapper`` (the fit's own ``_BinMapper``) on the rows its ``fit`` would sample, then the bins of every
    row: the fit part's Fortran-ordered (as ``fit_transform`` returns them), the hold-out's C-ordered (as ``fit``
    makes them for prediction)."""
    from sklearn.utils import check_random_state

    fit_rows = sizes[0]
    if mapper.subsample is not None and fit_rows > mapper.subsample:
        # _BinMapper.fit's draw: the same generator, seed and call, so the same rows the same number of times.
        drawn = check_random_state(mapper.random_state).choice(fit_rows, mapper.subsample, p=None, replace=True)
        copies = np.bincount(drawn, minlength=fit_rows)
        del drawn
    else:
        copies = np.ones(fit_rows, dtype=np.int64)
    sample = np.empty((int(copies.sum()), width), dtype=np.float64)
    filled = 0

    def sampled(part: np.ndarray, place: np.ndarray) -> np.ndarray:
        mine = part == 0
        mine[mine] = copies[place[mine]] > 0
        return mine

    for matrix, part, place in chunks(sampled):
        mine = part == 0
        rows = np.repeat(_checked(matrix, width)[mine], copies[place[mine]], axis=0)
        sample[filled : filled + len(rows)] = rows
        filled += len(rows)
    if filled != len(sample):
        raise ValueError(f"the chunks held {filled} of the {len(sample)} sampled rows")
    mapper.fit(sample)  # as many rows as the subsample: the mapper samples no further
    del sample

    binned = [np.empty((sizes[0], width), dtype=np.uint8, order="F")]
    binned += [np.empty((size, width), dtype=np.uint8) for size in sizes[1:]]
    seen = [np.zeros(size, dtype=bool) for size in sizes]
    for matrix, part, place in chunks(None):
        bins = mapper.transform(_checked(matrix, width))
        for index, result in enumerate(binned):
            mine = part == index
            result[place[mine]] = bins[mine]
            seen[index][place[mine]] = True
    if not all(flags.all() for flags in seen):
        raise ValueError("the chunks did not bring every row of each part")
    return binned


def _checked(matrix: np.ndarray, width: int) -> np.ndarray:
    if matrix.dtype != np.float64 or matrix.ndim != 2 or matrix.shape[1] != width:
        raise ValueError(f"a chunk of {matrix.dtype} {matrix.shape} where float64 rows of {width} columns were due")
    return matrix
