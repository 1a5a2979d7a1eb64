"""`make bench-encoding`: is HistGradientBoosting as accurate on ordinal codes as on one-hot columns?

Ordinal codes took train-model with HistGradientBoosting from 3.8× to 2.8× its frame at 1M rows (docs/scaling.md;
since one-hot columns are binned from the file's batches, 2.8× either way); issue 28 makes a memory-saving encoding
the default only where accuracy holds. This measures it, paired: each
fold or split fits both encodings on the same training rows and scores them on the same test rows, with the
project's preprocessor (``build_preprocessor``) and the bench's HistGradientBoosting (100 iterations,
learning rate 0.1, unlimited depth and, for the sample, also depth 10, the run form's default).

- The bundled German credit sample (1,000 rows, 9 columns, 6 of them categorical and carrying signal): 20
  repeats of stratified 5-fold cross-validation. The difference's 95 % interval is Nadeau and Bengio's corrected
  resampled t (folds overlap, so the plain t interval would be too narrow).
- ``synthetic.generate_wide`` at ``--rows`` (30 columns; its categorical columns carry little signal): one
  80/20 split per seed, the exact McNemar test on the discordant rows of each, and the mean over seeds.

Prints one JSON object per table and writes nothing unless ``--output`` names a Markdown file.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
ENCODINGS = ("onehot", "ordinal")


def fit_and_score(
    x_train: pd.DataFrame, y_train: pd.Series, x_test: pd.DataFrame, y_test: pd.Series, encoding: str, depth: int
) -> tuple[float, float, np.ndarray]:
    """Test accuracy, ROC AUC and each test row's correctness of one encoding, fitted as train-model fits."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import Pipeline

    from gated_training.config import FeatureSettings
    from gated_training.steps.engineer_features import build_preprocessor, infer_column_roles

    settings = FeatureSettings(categorical_encoding=encoding)
    preprocessor = build_preprocessor(infer_column_roles(x_train, settings.max_categories), settings)
    estimator = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_depth=depth or None, random_state=42
    )
    model = Pipeline([("preprocess", preprocessor), ("model", estimator)]).fit(x_train, y_train)
    proba = model.predict_proba(x_test)[:, 1]
    correct = model.classes_[(proba >= 0.5).astype(int)] == y_test.to_numpy()
    return float(correct.mean()), float(roc_auc_score(y_test, proba)), correct


def corrected_interval(differences: np.ndarray, train_rows: int, test_rows: int) -> tuple[float, float, float]:
    """Mean and 95 % interval of a difference over overlapping folds (Nadeau & Bengio's corrected t)."""
    from scipy import stats

    folds = len(differences)
    error = math.sqrt((1 / folds + test_rows / train_rows) * float(np.var(differences, ddof=1)))
    half = float(stats.t.ppf(0.975, folds - 1)) * error
    mean = float(np.mean(differences))
    return mean, mean - half, mean + half


def german_credit(depth: int, repeats: int) -> dict[str, Any]:
    from sklearn.model_selection import RepeatedStratifiedKFold

    frame = pd.read_csv(REPO / "data" / "german_credit.csv")
    y, x = frame["risk"], frame.drop(columns=["risk"])
    scores = []
    folds = RepeatedStratifiedKFold(n_splits=5, n_repeats=repeats, random_state=0).split(x, y)
    for train, test in folds:
        pair = [fit_and_score(x.iloc[train], y.iloc[train], x.iloc[test], y.iloc[test], e, depth) for e in ENCODINGS]
        scores.append([pair[0][0], pair[1][0], pair[0][1], pair[1][1]])
    table = np.array(scores)
    train_rows, test_rows = len(x) * 4 // 5, len(x) // 5
    return {
        "table": "German credit (bundled sample)",
        "rows": len(x),
        "depth": depth,
        "fits": f"{repeats} x 5-fold CV",
        "accuracy": [float(table[:, 0].mean()), float(table[:, 1].mean())],
        "accuracy_difference": corrected_interval(table[:, 1] - table[:, 0], train_rows, test_rows),
        "roc_auc": [float(table[:, 2].mean()), float(table[:, 3].mean())],
        "roc_auc_difference": corrected_interval(table[:, 3] - table[:, 2], train_rows, test_rows),
    }


def synthetic_table(rows: int, seeds: int) -> dict[str, Any]:
    from sklearn.model_selection import train_test_split

    from gated_training.data import synthetic
    from gated_training.stats import mcnemar_exact

    runs = []
    for seed in range(seeds):
        frame = synthetic.generate_wide(rows, 30, seed=seed)
        y, x = frame["churned"], frame.drop(columns=["churned"])
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
        (acc_1, auc_1, right_1), (acc_2, auc_2, right_2) = (
            fit_and_score(x_train, y_train, x_test, y_test, encoding, 0) for encoding in ENCODINGS
        )
        losses, wins = int((right_1 & ~right_2).sum()), int((~right_1 & right_2).sum())
        runs.append(
            {
                "seed": seed,
                "accuracy": [acc_1, acc_2],
                "roc_auc": [auc_1, auc_2],
                "discordant": [losses, wins],
                "mcnemar_p": mcnemar_exact(losses, wins),
            }
        )
    differences = np.array([run["accuracy"][1] - run["accuracy"][0] for run in runs])
    return {
        "table": "generate_wide (bench table)",
        "rows": rows,
        "depth": 0,
        "fits": f"{seeds} seeds, one 80/20 split each",
        "runs": runs,
        "accuracy_difference_mean": float(differences.mean()),
        "accuracy_difference_sd": float(differences.std(ddof=1)) if seeds > 1 else None,
    }


def write_page(results: list[dict[str, Any]], output: Path) -> None:
    def pp(value: float) -> str:
        return f"{100 * value:+.2f}"

    lines = [
        "# HistGradientBoosting: one-hot columns or ordinal codes",
        "",
        "Generated by `make bench-encoding` (`benchmarks/encoding_accuracy.py`); re-running it regenerates this page.",
        "Both encodings fitted on the same rows and scored on the same rows (paired); differences are ordinal minus",
        "one-hot, in percentage points. Memory at 1M rows, train-model alone: 2.8× the frame either way since one-hot "
        "columns are binned from the file's batches (scaling.md).",
        "",
        "| table | rows | max depth | fits | accuracy one-hot / ordinal | difference (95 % interval) "
        "| ROC AUC one-hot / ordinal | difference (95 % interval) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if "runs" in result:
            continue
        acc, acc_d, auc, auc_d = (
            result["accuracy"],
            result["accuracy_difference"],
            result["roc_auc"],
            result["roc_auc_difference"],
        )
        lines.append(
            f"| {result['table']} | {result['rows']:,} | {result['depth'] or 'unlimited'} | {result['fits']} "
            f"| {acc[0]:.4f} / {acc[1]:.4f} | {pp(acc_d[0])} ({pp(acc_d[1])} to {pp(acc_d[2])}) "
            f"| {auc[0]:.4f} / {auc[1]:.4f} | {pp(auc_d[0])} ({pp(auc_d[1])} to {pp(auc_d[2])}) |"
        )
    for result in results:
        if "runs" not in result:
            continue
        lines += [
            "",
            f"{result['table']}, {result['rows']:,} rows, {result['fits']} (unlimited depth): mean accuracy "
            f"difference {pp(result['accuracy_difference_mean'])} pp"
            + (f" (sd {100 * result['accuracy_difference_sd']:.2f} pp)" if result["accuracy_difference_sd"] else ""),
            "",
            "| seed | accuracy one-hot / ordinal | ROC AUC one-hot / ordinal "
            "| discordant rows (one-hot right / ordinal right) | McNemar exact p |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {run['seed']} | {run['accuracy'][0]:.5f} / {run['accuracy'][1]:.5f} "
            f"| {run['roc_auc'][0]:.5f} / {run['roc_auc'][1]:.5f} | {run['discordant'][0]} / {run['discordant'][1]} "
            f"| {run['mcnemar_p']:.3f} |"
            for run in result["runs"]
        ]
    output.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the synthetic table")
    parser.add_argument("--seeds", type=int, default=5, help="synthetic tables drawn (one split each)")
    parser.add_argument("--repeats", type=int, default=20, help="repeats of 5-fold CV on the German credit sample")
    parser.add_argument("--output", help="a Markdown page to write")
    args = parser.parse_args()
    results = [german_credit(depth, args.repeats) for depth in (0, 10)]
    results.append(synthetic_table(args.rows, args.seeds))
    for result in results:
        print(json.dumps(result), flush=True)
    if args.output:
        write_page(results, Path(args.output))


if __name__ == "__main__":
    main()
