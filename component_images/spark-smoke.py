"""Inside the Spark image (make image-test), as the non-root user and with no network but loopback: the image's
entry point runs the driver as a SparkApplication's driver pod would (`driver`, spark-submit in client mode, the
main file at local:///opt/gated-training/spark_driver.py) on local[1]. validate-data on the sample ends as the
pandas engine in the same image decides; a batch that is not UTF-8 fails with the pandas engine's words in the
driver's result; train-model trains estimator=xgboost with xgboost.spark and logs the run to MLflow, and its model
(the one serving format: the preprocessor and the booster) scores the test split as its report says; an executor
pod without Spark's environment is refused by name."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import mlflow
import pandas as pd

from gated_training.config import FeatureSettings, ModelSettings, SplitSettings
from gated_training.spark import remote
from gated_training.steps.engineer_features import engineer_features
from gated_training.steps.train_model import outcome_from_record
from gated_training.steps.validate_data import validate_data

WORK = Path(sys.argv[1])
DATA = WORK / "german_credit.csv"
SUITE = WORK / "german_credit.expectations.json"


def request(name: str, data: Path) -> Path:
    prefix = WORK / "staging" / "run" / name
    prefix.mkdir(parents=True)
    document = {
        "format": 1,
        "step": "validate-data",
        "prefix": str(prefix),
        "inputs": [],
        "outputs": {"files": ["data_docs_out", "report_out"], "folders": ["dataset_out"]},
        "arguments": {
            "data_uri": str(data),
            "suite_uri": str(SUITE),
            "target": "risk",
            "min_quality_score": 0.9,
            "pinned_suite_sha256": "",
            "max_input_mb": 100.0,
        },
    }
    (prefix / "request.json").write_text(json.dumps(document))
    return prefix


def driver(prefix: Path, step: str = "validate-data") -> int:
    env = {**os.environ, "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1", "GATED_TRAINING_SPARK_DRIVER": "1"}
    command = [
        "/opt/entrypoint.sh",
        "driver",
        "--master",
        "local[1]",
        "--name",
        prefix.name,
        "local:///opt/gated-training/spark_driver.py",
        step,
        str(prefix / "request.json"),
    ]
    return subprocess.run(command, env=env, timeout=600).returncode


good = request("gt-validate-data-good", DATA)
assert driver(good) == 0, "the driver failed on the sample"
result = json.loads((good / "result.json").read_text())
assert result == {"format": 1, "step": "validate-data", "ok": True}, result
report = json.loads((good / "outputs" / "report_out").read_text())
pandas = validate_data(
    data_uri=str(DATA),
    suite_uri=str(SUITE),
    target="risk",
    min_quality_score=0.9,
    dataset_out=str(WORK / "pandas.parquet"),
    report_out=str(WORK / "pandas.json"),
    data_docs_out=str(WORK / "pandas.html"),
)
assert report["passed"] and report["data_sha256"] == pandas.data_sha256, (report["passed"], report["data_sha256"])
assert [c["passed"] for c in report["checks"]] == [c.passed for c in pandas.checks]
assert (good / "outputs" / "dataset_out" / "_SUCCESS").exists()

broken = WORK / "broken.csv"
broken.write_bytes(DATA.read_bytes().replace(b"female", b"f\xe9male", 1))
bad = request("gt-validate-data-bad", broken)
assert driver(bad) == 1, "the driver did not fail on a batch that is not UTF-8"
error = json.loads((bad / "result.json").read_text())["error"]
assert error["kind"] == "DataError" and "not valid UTF-8" in error["message"], error

# train-model: the driver trains with xgboost.spark on the splits engineer-features wrote (in this process, pandas).

features = WORK / "features"
features.mkdir()
engineer_features(
    dataset_path=str(WORK / "pandas.parquet"),
    target="risk",
    feature_settings=FeatureSettings(),
    split_settings=SplitSettings(),
    train_out=str(features / "train.parquet"),
    test_out=str(features / "test.parquet"),
    preprocessor_out=str(features / "preprocessor.joblib"),
    metadata_out=str(features / "metadata.json"),
)
train = WORK / "staging" / "run" / "gt-train-model"
train.mkdir(parents=True)
files = remote.StepFiles(
    inputs={
        "preprocessor_path": str(features / "preprocessor.joblib"),
        "feature_metadata_path": str(features / "metadata.json"),
    },
    files={"model_out": "", "report_out": "", "importances_out": ""},
)
for name, local in files.inputs.items():
    Path(remote.input_uri(str(train), name)).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(local, remote.input_uri(str(train), name))
settings = ModelSettings(estimator="xgboost", n_estimators=30, max_depth=3, cv_folds=3)
arguments = {
    "train_path": str(features / "train.parquet"),
    "test_path": str(features / "test.parquet"),
    "target": "risk",
    "settings": dataclasses.asdict(settings),
    "tracking_uri": f"sqlite:///{WORK / 'mlflow.db'}",
    "experiment": "spark-image",
    "data_sha256": pandas.data_sha256,
    "kfp_run_id": "image-test",
    "data_uri": str(DATA),
    "pipeline_version": "image-test",
}
(train / "request.json").write_text(json.dumps(remote.request_document("train-model", arguments, files, str(train))))
assert driver(train, "train-model") == 0, "the driver failed to train on the sample"
assert json.loads((train / "result.json").read_text()) == {"format": 1, "step": "train-model", "ok": True}
trained = outcome_from_record(json.loads(Path(remote.output_uri(str(train), "report_out")).read_text()))

model = joblib.load(remote.output_uri(str(train), "model_out"))
assert type(model.named_steps["model"]).__name__ == "BoostedTrees", model
test = pd.read_parquet(features / "test.parquet")
accuracy = float((model.predict(test.drop(columns=["risk"])) == test["risk"].to_numpy()).mean())
assert abs(accuracy - trained.test["accuracy"]) < 1e-12 and accuracy > 0.6, (accuracy, trained.test)

run = mlflow.MlflowClient(tracking_uri=arguments["tracking_uri"]).get_run(trained.mlflow_run_id)
assert run.data.params["estimator"] == "xgboost" and run.data.tags["kfp_run_id"] == "image-test", run.data

executor = subprocess.run(["/opt/entrypoint.sh", "executor"], capture_output=True, text=True)
assert executor.returncode == 64 and "without SPARK_DRIVER_URL" in executor.stderr, executor.stderr
print(
    "spark image: the driver entry point validated the sample as pandas does, failed a broken batch with its "
    f"words, trained xgboost with xgboost.spark (test accuracy {accuracy:.3f}, logged to MLflow), and an executor "
    "without Spark's environment was refused"
)
