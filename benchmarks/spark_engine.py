"""`make bench-spark`: the steps that run on Spark (validate-data, check-drift, engineer-features, train-model,
evaluate-model), on both engines, at SPARK_BENCH_ROWS rows × 30 columns (``--steps`` re-measures some of them and
keeps the page's other rows).

Each (step, engine) runs in a fresh process, as a pipeline step does, on the bench's table (Parquet) and its
drafted suite; engineer-features splits and fits on the same batch (its metadata is compared, key order aside);
train-model trains estimator=xgboost (100 rounds, depth 6) on the splits engineer-features wrote on Spark, on both
engines (cross-validation on the same 200,000-row sample; Spark's booster from local[2]'s two workers, so its test
accuracy is compared within 0.02, its cross-validation exactly); evaluate-model gates the pandas engine's booster
on that test split with the default thresholds and no champion (a first run), and both engines' decision files
must be equal byte for byte;
the check-drift row compares the batch with a reference profile of another batch of the same
table (``drift.check_batch``'s counting, without a registry). Measured per row: the wall time, the time to the
first read (imports, and on Spark the JVM's start), and the peak RSS of the whole process tree (on Spark: the
Python driver, the JVM and its Python workers, sampled every 50 ms from /proc). Spark runs on local[2], the
machine's two cores. Writes docs/benchmarks-spark.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench import TARGET, write_batch

ROOT = Path(__file__).resolve().parents[1]
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
STEPS = ("validate-data", "check-drift", "engineer-features", "train-model", "evaluate-model")
TRAIN_TOLERANCE = 0.02

STEP = r"""
import json, sys, time
started = time.perf_counter()
step, engine, data, suite, work, profile_path = sys.argv[1:7]
marks = {}
if step == "validate-data":
    from gated_training.steps.validate_data import validate_data
    if engine == "spark":
        from gated_training.spark import spark_session
        spark_session()
    marks["ready"] = time.perf_counter() - started
    outcome = validate_data(data_uri=data, suite_uri=suite, target=TARGET, min_quality_score=0.0,
        dataset_out=work + "/batch.out.parquet", report_out=work + "/report.json", data_docs_out=work + "/page.html",
        engine=engine, max_input_mb=4096)
    marks["result"] = {"passed": outcome.passed, "data_sha256": outcome.data_sha256}
elif step == "engineer-features":
    import hashlib
    from gated_training.config import FeatureSettings, SplitSettings
    from gated_training.steps.engineer_features import engineer_features
    if engine == "spark":
        from gated_training.spark import spark_session
        spark_session()
    marks["ready"] = time.perf_counter() - started
    out = work + "/features-" + engine
    outcome = engineer_features(dataset_path=data, target=TARGET, feature_settings=FeatureSettings(),
        split_settings=SplitSettings(), train_out=out + "-train", test_out=out + "-test",
        preprocessor_out=out + ".joblib", metadata_out=out + ".json", engine=engine)
    metadata = json.dumps(json.load(open(out + ".json")), sort_keys=True).encode()
    marks["result"] = {"train_rows": outcome.train_rows, "metadata_sha256": hashlib.sha256(metadata).hexdigest()}
elif step == "train-model":
    from gated_training.config import ModelSettings
    from gated_training.steps.train_model import train_model
    if engine == "spark":
        from gated_training.spark import spark_session
        spark_session()
    marks["ready"] = time.perf_counter() - started
    features, out = work + "/features-spark", work + "/train-" + engine
    outcome = train_model(train_path=features + "-train", test_path=features + "-test",
        preprocessor_path=features + ".joblib", feature_metadata_path=features + ".json", target=TARGET,
        settings=ModelSettings(estimator="xgboost", n_estimators=100, max_depth=6),
        tracking_uri="sqlite:///" + out + ".db", experiment="bench", data_sha256="", kfp_run_id="bench",
        model_out=out + ".joblib", report_out=out + ".json", importances_out=out + "-importances.json", engine=engine)
    marks["result"] = {"cv_rows": outcome.cv_rows, "cv_accuracy_mean": outcome.cv_accuracy_mean,
        "test_accuracy": outcome.test["accuracy"]}
elif step == "evaluate-model":
    import hashlib
    from gated_training.config import GateThresholds
    from gated_training.steps.evaluate_model import evaluate_model
    if engine == "spark":
        from gated_training.spark import spark_session
        spark_session()
    marks["ready"] = time.perf_counter() - started
    features, trained, out = work + "/features-spark", work + "/train-pandas", work + "/gate-" + engine
    decision = evaluate_model(model_path=trained + ".joblib", test_path=features + "-test",
        training_report_path=trained + ".json", target=TARGET, thresholds=GateThresholds(),
        registry_uri=work + "/registry-empty", model_name="bench", decision_out=out + ".json",
        report_out=out + ".md", feature_metadata_path=features + ".json", engine=engine)
    marks["result"] = {"decision": decision.decision,
        "decision_sha256": hashlib.sha256(open(out + ".json", "rb").read()).hexdigest()}
else:
    from gated_training.config import DriftPolicy
    from gated_training.drift import compare_tallies
    profile = json.load(open(profile_path))
    if engine == "spark":
        from gated_training.spark import drift_tallies, spark_session
        spark = spark_session()
        marks["ready"] = time.perf_counter() - started
        tallies = drift_tallies(spark.read.parquet(data), profile, TARGET, [])
    else:
        from gated_training.data import read_parquet
        from gated_training.drift.gate import tally_frame
        marks["ready"] = time.perf_counter() - started
        tallies = tally_frame(read_parquet(data), profile, TARGET, [])
    report = compare_tallies(profile, tallies.features, tallies.rows, DriftPolicy())
    marks["result"] = {"drifted": report.drifted, "max_psi": report.max_psi}
marks["wall"] = time.perf_counter() - started
print(json.dumps(marks))
""".replace("TARGET", repr(TARGET))


def tree_rss(root: int) -> int:
    """The resident bytes of ``root`` and every process below it."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as handle:
                rss[int(entry)] = int(handle.read().split()[1]) * PAGE_SIZE
            parents[int(entry)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        total += rss.get(pid, 0)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return total


def run_step(step: str, engine: str, data: Path, suite: Path, work: Path, profile: Path) -> dict[str, Any]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "ARROW_DEFAULT_MEMORY_POOL": "system"}
    process = subprocess.Popen(
        [sys.executable, "-c", STEP, step, engine, str(data), str(suite), str(work), str(profile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(0.05)
    output = process.stdout.read() if process.stdout else ""
    if process.returncode:
        raise SystemExit(f"{step} on {engine} failed (exit {process.returncode})")
    marks = json.loads(output.strip().splitlines()[-1])
    return {**marks, "peak_mib": round(peak / 2**20)}


def measure(rows: int, root: Path, steps: tuple[str, ...] = STEPS) -> list[dict[str, Any]]:
    from gated_training.data import synthetic
    from gated_training.drift import profile_frame

    work = root / f"{rows}"
    data, suite, frame_mib = write_batch(work, rows, 30)
    profile = work / "profile.json"
    reference = synthetic.generate_wide(min(rows, 200_000), 30, seed=8)
    profile.write_text(json.dumps(profile_frame(reference, TARGET)))
    results = []
    for step in steps:
        for engine in ("pandas", "spark"):
            measured = run_step(step, engine, data, suite, work, profile)
            results.append({"rows": rows, "frame_mib": frame_mib, "step": step, "engine": engine, **measured})
            print(json.dumps(results[-1]), flush=True)
    return results


def recorded(page: Path) -> list[dict[str, Any]]:
    """The rows a previous run wrote on the page, to keep beside the steps measured now."""
    import re

    pattern = re.compile(
        r"^\| ([\d,]+) \| ([\d.]+) MiB \| ([a-z-]+) \| (pandas|spark) \| ([\d.]+) s \| ([\d.]+) s \| ([\d,]+) MiB \|"
    )
    rows = []
    for line in page.read_text().splitlines() if page.exists() else []:
        match = pattern.match(line)
        if match and match.group(3) in STEPS:
            rows.append(
                {
                    "rows": int(match.group(1).replace(",", "")),
                    "frame_mib": float(match.group(2)),
                    "step": match.group(3),
                    "engine": match.group(4),
                    "ready": float(match.group(5)),
                    "wall": float(match.group(6)),
                    "peak_mib": int(match.group(7).replace(",", "")),
                }
            )
    return rows


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "# The Spark engine against pandas (`make bench-spark`)",
        "",
        "Written by `benchmarks/spark_engine.py` on this machine (2 cores, Spark local[2], driver memory 2g).",
        "Each row is one step in a fresh process; peak RSS is the whole process tree (on Spark: the Python",
        'driver, the JVM and its Python workers). "ready" is the time before the first read: imports, and on',
        "Spark the JVM's start. The verdicts and fingerprints of both engines are equal in every row; train-model's",
        "cross-validation is equal, and its test accuracy (Spark's booster from two workers) within 0.02;",
        "evaluate-model's decision file (every check, interval and p-value) is equal byte for byte.",
        "",
        "| rows | frame | step | engine | ready | wall | peak RSS | peak / frame |",
        "|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['frame_mib']} MiB | {r['step']} | {r['engine']} | {r['ready']:.1f} s | "
            f"{r['wall']:.1f} s | {r['peak_mib']:,} MiB | {r['peak_mib'] / r['frame_mib']:.1f}× |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="1000000")
    parser.add_argument("--work", default=str(ROOT / ".bench" / "spark"))
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks-spark.md"))
    parser.add_argument("--steps", default=",".join(STEPS), help="the steps to measure (the others' rows are kept)")
    args = parser.parse_args()
    steps = tuple(step for step in STEPS if step in args.steps.split(","))
    results = [r for rows in args.rows.split(",") for r in measure(int(rows), Path(args.work), steps)]
    for step in steps:
        for rows in {r["rows"] for r in results}:
            pair = {r["engine"]: dict(r["result"]) for r in results if r["step"] == step and r["rows"] == rows}
            if step == "train-model":
                accuracy = {engine: pair[engine].pop("test_accuracy") for engine in pair}
                if abs(accuracy["pandas"] - accuracy["spark"]) > TRAIN_TOLERANCE:
                    raise SystemExit(f"train-model at {rows} rows: test accuracy differs beyond 0.02: {accuracy}")
            if pair["pandas"] != pair["spark"]:
                raise SystemExit(f"{step} at {rows} rows: the engines disagree: {pair}")
    measured = {(r["rows"], r["step"], r["engine"]) for r in results}
    kept = [r for r in recorded(Path(args.output)) if (r["rows"], r["step"], r["engine"]) not in measured]
    order = {step: index for index, step in enumerate(STEPS)}
    merged = sorted([*kept, *results], key=lambda r: (r["rows"], order[r["step"]], r["engine"]))
    Path(args.output).write_text(markdown(merged))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
