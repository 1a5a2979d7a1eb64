"""The reference design's approach, for comparison only: what the redesign replaced.

KFP v1 style: five separate processes with CSV files between them; median/mode imputation,
label encoding, pairwise interactions, degree-2 polynomial features and SelectKBest, all
fitted on every row before the split (the leak); RandomForest(100, depth 10,
min_samples_split 5) with 5-fold CV, logged to MLflow; an accuracy threshold; a "deploy" that
copies the model file. Each step prints its own wall, CPU and peak RSS as JSON.

Usage: python -m benchmarks.reference_design STEP --workdir DIR [--data CSV --suite JSON --target COL]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

STEPS = ("validate", "features", "train", "evaluate", "deploy")
K_BEST = 20
MIN_ACCURACY = 0.85


def validate(args: argparse.Namespace, work: Path) -> None:
    import pandas as pd

    from gated_training.steps.validate_data import run_suite
    from gated_training.validation import read_suite_document

    frame = pd.read_csv(args.data)
    checks = run_suite(frame, read_suite_document(args.suite), args.suite)
    score = sum(c.passed for c in checks) / len(checks)
    if score < 0.8 or not 1_000 <= len(frame) <= 1_000_000:
        raise SystemExit(f"validation failed: score {score:.3f}, rows {len(frame)}")
    frame.to_csv(work / "validated.csv", index=False)


def features(args: argparse.Namespace, work: Path) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.preprocessing import LabelEncoder, PolynomialFeatures

    frame = pd.read_csv(work / "validated.csv")
    target = frame.pop(args.target)
    numeric = [
        c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    for column in frame.columns:  # fitted on every row: the leak the redesign removed
        if column in numeric:
            frame[column] = frame[column].fillna(frame[column].median())
        else:
            frame[column] = LabelEncoder().fit_transform(frame[column].fillna(frame[column].mode()[0]).astype(str))
    top = numeric[:5]
    for i, a in enumerate(top):
        for b in top[i + 1 :]:
            frame[f"{a}_x_{b}"] = frame[a] * frame[b]
    poly = PolynomialFeatures(degree=2, include_bias=False).fit_transform(frame[top])
    values = np.hstack([frame.to_numpy(dtype=float), poly])
    selected = SelectKBest(f_classif, k=min(K_BEST, values.shape[1])).fit_transform(values, target)
    out = pd.DataFrame(selected, columns=[f"f{i}" for i in range(selected.shape[1])])
    out[args.target] = target.to_numpy()
    out.to_csv(work / "features.csv", index=False)


def train(args: argparse.Namespace, work: Path) -> None:
    import joblib
    import mlflow
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score, train_test_split

    frame = pd.read_csv(work / "features.csv")
    y = frame.pop(args.target)
    x_train, x_test, y_train, y_test = train_test_split(frame, y, test_size=0.2, random_state=42, stratify=y)
    model = RandomForestClassifier(n_estimators=100, max_depth=10, min_samples_split=5, random_state=42, n_jobs=-1)
    cv = cross_val_score(model, x_train, y_train, cv=5, scoring="accuracy")
    model.fit(x_train, y_train)
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    with mlflow.start_run():
        mlflow.log_params({"n_estimators": 100, "max_depth": 10, "min_samples_split": 5})
        mlflow.log_metrics({"cv_accuracy_mean": float(cv.mean())})
    joblib.dump(model, work / "model.joblib")
    x_test.assign(**{args.target: y_test}).to_csv(work / "test.csv", index=False)


def evaluate(args: argparse.Namespace, work: Path) -> None:
    import joblib
    import pandas as pd

    frame = pd.read_csv(work / "test.csv")
    y = frame.pop(args.target)
    accuracy = float((joblib.load(work / "model.joblib").predict(frame) == y).mean())
    (work / "evaluation.json").write_text(json.dumps({"accuracy": accuracy, "deploy": accuracy >= MIN_ACCURACY}))


def deploy(args: argparse.Namespace, work: Path) -> None:
    if json.loads((work / "evaluation.json").read_text())["deploy"]:
        (work / "registry").mkdir(exist_ok=True)
        shutil.copy(work / "model.joblib", work / "registry" / "model.joblib")


def main(argv: list[str]) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--data")
    parser.add_argument("--suite")
    parser.add_argument("--target", default="churned")
    args = parser.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    globals()[args.step](args, work)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "step": args.step,
                "wall_seconds": round(time.monotonic() - started, 3),
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
                "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
