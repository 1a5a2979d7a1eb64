"""Inside the serving image (image-test.sh): start MLServer as the ServingRuntime does, on the
registry copied from the component image's deploy run, and check one smoke row, sent alone, gets
the label and probabilities recorded at gate time. Also: /metrics answers."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
from serving_requests import v2_answer, v2_request  # tests/serving_requests.py, copied beside this script

from gated_training.registry import PROBABILITY_TOLERANCE
from gated_training.serving import service_name
from gated_training.serving.manifests import model_environment, runtime_environment

root = Path(sys.argv[1])
registry = root / "registry"
pointer_path = next(registry.glob("*/champion.json"))
model_name, pointer = pointer_path.parent.name, json.loads(pointer_path.read_text())
version_dir = pointer_path.parent / "versions" / pointer["version"]
mount = Path("/tmp/mnt-models")
shutil.copytree(version_dir / "serve", mount)  # what the storage initializer copies
name = service_name(model_name)
env = {
    **os.environ,
    **{e["name"]: e["value"] for e in runtime_environment()},
    **{
        e["name"]: e["value"]
        for e in model_environment(
            registry_uri=str(registry),
            model_name=model_name,
            version=pointer["version"],
            manifest_sha256=pointer["manifest_sha256"],
        )
    },
    "MLSERVER_MODEL_NAME": name,
    "MLSERVER_MODEL_URI": str(mount),
    "GATED_TRAINING_REGISTRY_KEY_FILE": str(root / "registry.key"),
}
server = subprocess.Popen(["mlserver", "start", "/opt/gated-training/mlserver-root"], env=env)
try:
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:8080/v2/models/{name}/ready", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        sys.exit("the model never became ready")
    rows = pd.read_parquet(version_dir / "smoke_rows.parquet")
    labels = json.loads((version_dir / "smoke_predictions.json").read_text())
    probabilities = json.loads((version_dir / "smoke_probabilities.json").read_text())
    index = int(rows.isna().any(axis=1).to_numpy().argmax())  # a row with a missing value, if any
    row = rows.iloc[[index]]
    request = urllib.request.Request(
        f"http://127.0.0.1:8080/v2/models/{name}/infer",
        json.dumps(v2_request(row)).encode(),
        {"Content-Type": "application/json"},
    )
    answered, answered_probabilities = v2_answer(json.load(urllib.request.urlopen(request, timeout=30)))
    label, probs = answered[0], answered_probabilities[0]
    worst = max(abs(a - b) for a, b in zip(probs, probabilities[index]))
    if label != labels[index] or worst > PROBABILITY_TOLERANCE:
        sys.exit(f"smoke row {index}: answered {label} {probs}, gated {labels[index]} {probabilities[index]}")
    metrics = urllib.request.urlopen("http://127.0.0.1:8082/metrics", timeout=10).read().decode()
    assert "model_infer_request_success_total" in metrics, "no Prometheus metrics"
    print(
        f"ok: {model_name} {pointer['version']} served as {name}; smoke row {index} answered {label} as gated; "
        f"/metrics up"
    )
finally:
    server.terminate()
    server.wait(timeout=30)
