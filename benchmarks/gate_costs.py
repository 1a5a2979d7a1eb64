"""`make bench-gate`: what the evidence checks of issue 24 add to each step, at 100k and 1M rows.

Each row times one addition in-process on ``synthetic.generate_wide`` (30 columns), against a champion
trained on a disjoint batch of the same size, so every check runs (champion comparison, slices, segment
flips, label shift):

- deploy-model: the label profile (``segments.label_profile`` on the training split);
- check-drift: the label-shift test (``segments.label_shift``) of a batch against that profile;
- train-model: the pair-leakage scores (``leakage.pair_feature_scores``, 28 pairs on 20k-row samples);
- evaluate-model: every check of ``gate.CHECKS`` (with ``slice_by`` on two columns), and of those the
  paired statistics alone.

Prints one JSON object per size and writes nothing unless ``--output`` names a Markdown file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd


def timed(function: Callable[[], Any], repeat: int = 2) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def measure(rows: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from gated_training import stats
    from gated_training.config import GateThresholds
    from gated_training.data import synthetic
    from gated_training.drift import segments
    from gated_training.gate import (
        Answers,
        ChampionView,
        GateContext,
        pair_feature_scores,
        run_checks,
        score_predictions,
    )

    TARGET = synthetic.TARGET
    train = synthetic.generate_wide(rows, seed=1)
    batch = synthetic.generate_wide(rows, seed=2)
    test = batch.sample(frac=0.2, random_state=0).reset_index(drop=True)
    results: dict[str, Any] = {"rows": rows}
    results["deploy-model: label profile"], profile = timed(lambda: segments.label_profile(train, TARGET))
    results["check-drift: label shift"], _ = timed(lambda: segments.label_shift(profile, batch, TARGET, 0.01, 0.2))
    features = [c for c in train.columns if c != TARGET]
    results["train-model: pair leakage (28 pairs)"], _ = timed(
        lambda: pair_feature_scores(train, test, TARGET, features[:8], {}), repeat=1
    )

    numeric = train[features].select_dtypes("number").columns[:6]
    model = HistGradientBoostingClassifier(max_iter=30).fit(train[numeric].fillna(0), train[TARGET])
    y = test[TARGET].to_numpy()
    proba = model.predict_proba(test[numeric].fillna(0))
    champion_codes = proba.argmax(axis=1)
    rng = np.random.default_rng(0)
    candidate_codes = np.where(rng.random(len(y)) < 0.05, 1 - champion_codes, champion_codes)
    candidate_proba = np.clip(proba + rng.normal(0, 0.02, proba.shape), 0, 1)
    candidate_proba /= candidate_proba.sum(axis=1, keepdims=True)

    def answers(codes: np.ndarray, p: np.ndarray) -> Answers:
        return Answers(codes=codes, proba=p, scores=score_predictions(pd.Series(y), codes, p, np.array([0, 1])))

    view = ChampionView(
        version="v",
        rows=np.arange(len(y)),
        y=y,
        candidate=answers(candidate_codes, candidate_proba),
        champion=answers(champion_codes, proba),
        note="",
        segments=profile["definitions"],
    )
    context = GateContext(
        thresholds=GateThresholds(slice_by="region,channel", max_calibration_regression=0.01),
        labels=[0, 1],
        y=y,
        candidate=view.candidate,
        baseline=answers(np.zeros(len(y), dtype=int), np.tile([0.7, 0.3], (len(y), 1))),
        features=test[features],
        training={"overfit_gap": 0.0},
        metadata={},
        champion=view,
        champion_version="v",
        trained=[0, 1],
    )
    results["evaluate-model: every check"], checks = timed(lambda: run_checks(context), repeat=1)
    results["evaluate-model: paired statistics (accuracy, McNemar + bootstrap)"], _ = timed(
        lambda: stats.paired_confusion("accuracy", y, candidate_codes, champion_codes, 2, 0.05)
    )
    results["evaluate-model: DeLong (ROC AUC)"], _ = timed(
        lambda: stats.paired_delong(y == 1, candidate_proba[:, 1], proba[:, 1], 0.05)
    )
    results["checks"] = len(checks)
    results["test_rows"] = len(y)
    return results


def markdown(measured: list[dict[str, Any]]) -> str:
    keys = [k for k in measured[0] if k not in ("rows", "checks", "test_rows")]
    lines = [
        "| added by issue 24 | " + " | ".join(f"{m['rows']:,} rows (test {m['test_rows']:,})" for m in measured) + " |",
        "|---|" + "---|" * len(measured),
    ]
    lines += [f"| {key} | " + " | ".join(f"{m[key]:.2f} s" for m in measured) + " |" for key in keys]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--output", help="write the Markdown table here")
    args = parser.parse_args()
    measured = []
    for rows in (int(r) for r in args.rows.split(",")):
        result = measure(rows)
        print(json.dumps(result))
        measured.append(result)
    if args.output:
        Path(args.output).write_text(markdown(measured))


if __name__ == "__main__":
    main()
