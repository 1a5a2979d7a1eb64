"""Inside the Spark image (make image-test), as the non-root user and with no network but loopback: the image's
entry point runs the driver as a SparkApplication's driver pod would (`driver`, spark-submit in client mode, the
main file at local:///opt/gated-training/spark_driver.py) on local[1]. validate-data on the sample ends as the
pandas engine in the same image decides; a batch that is not UTF-8 fails with the pandas engine's words in the
driver's result; an executor pod without Spark's environment is refused by name."""

import json
import os
import subprocess
import sys
from pathlib import Path

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


def driver(prefix: Path) -> int:
    env = {**os.environ, "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1", "GATED_TRAINING_SPARK_DRIVER": "1"}
    command = [
        "/opt/entrypoint.sh",
        "driver",
        "--master",
        "local[1]",
        "--name",
        prefix.name,
        "local:///opt/gated-training/spark_driver.py",
        "validate-data",
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

executor = subprocess.run(["/opt/entrypoint.sh", "executor"], capture_output=True, text=True)
assert executor.returncode == 64 and "without SPARK_DRIVER_URL" in executor.stderr, executor.stderr
print(
    "spark image: the driver entry point validated the sample as pandas does, failed a broken batch with its "
    "words, and an executor without Spark's environment was refused"
)
