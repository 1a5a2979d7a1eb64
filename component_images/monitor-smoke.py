"""Inside the component image (user 10001, no network): log a window of calls of the deploy run's champion as the
sink writes them, label them, and run the compiled monitoring pipeline through `gated-training monitor`; the
monitor-window component must run and end `ok` with every call labelled.

    python3 monitor-smoke.py REGISTRY WORKDIR
"""

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from gated_training.predictionlog import Sink, SinkSettings
from gated_training.predictionlog.events import event_headers
from gated_training.registry import ModelRegistry, ensure_local_key

registry_uri, workdir = sys.argv[1], Path(sys.argv[2])
ensure_local_key()  # the local key the deploy run used, as the CLI finds it
end = datetime(2026, 12, 4, 18, tzinfo=timezone.utc)
registry = ModelRegistry(registry_uri, "tabular-classifier")
champion = registry.champion()
model, _ = registry.load_verified(champion.version)
data = pd.read_csv("data/german_credit.csv").sample(300, random_state=0).reset_index(drop=True)
truth = data.pop("risk")
predicted, proba = model.predict(data), model.predict_proba(data)
log, labels = workdir / "prediction-log", workdir / "labels"
sink = Sink(SinkSettings(log_uri=str(log), flush_events=10**6), sink_id="image-smoke")
for i, row in enumerate(data.to_dict(orient="records")):
    moment = end - timedelta(hours=10) + i * timedelta(minutes=1)
    inputs = [
        {"name": k, "shape": [1, 1], "datatype": "BYTES" if isinstance(v, str) else "FP64",
         "data": [None if v != v else v]}
        for k, v in row.items()
    ]  # fmt: skip
    answer = {
        "model_name": "tabular-classifier", "model_version": champion.version,
        "outputs": [{"name": "predict", "shape": [1, 1], "datatype": "INT64", "data": [int(predicted[i])]},
                    {"name": "predict_proba", "shape": [1, 2], "datatype": "FP64",
                     "data": [float(p) for p in np.asarray(proba[i])]}],
    }  # fmt: skip
    for kind, body in (("request", {"inputs": inputs}), ("response", answer)):
        headers = event_headers(
            event_id=f"call-{i}", kind=kind, source="image-smoke", time=moment, recorded_time=moment,
            inference_service="tabular-classifier", namespace="local", component="predictor", endpoint="default",
            metadata={}, content_type="application/json",
        )  # fmt: skip
        status, text = sink.receive(headers, json.dumps(body).encode())
        assert status == 200, text
assert not sink.flush(final=True).error
labels.mkdir(parents=True)
pd.DataFrame({"request_id": [f"call-{i}" for i in range(300)], "label": truth, "event_time": end.isoformat()}).to_csv(
    labels / "labels.csv", index=False
)
code = subprocess.run(
    ["gated-training", "monitor", "--pipeline", "compiled/monitoring_pipeline.yaml", "--workdir", str(workdir),
     "--registry", registry_uri, "--log-uri", str(log), "--labels", str(labels), "--window-end", end.isoformat(),
     "--set", "monitoring.label_delay_hours=24"],
).returncode  # fmt: skip
summary = json.loads((workdir / "summary.json").read_text())
if code != 0 or summary["outcome"] != "ok" or summary["tasks_ran"] != ["monitor-window"]:
    sys.exit(f"monitoring smoke failed: exit {code}, outcome {summary['outcome']}, tasks {summary['tasks_ran']}, "
             f"reasons {summary.get('reasons')}")  # fmt: skip
record = json.loads(Path(summary["monitoring_report"]).read_text())
(view,) = record["versions"]
assert view["realized"]["rows"] == 300 and view["contract"]["checks"] > 0, view
print(f"ok: monitoring {summary['outcome']}; 300 calls, realized accuracy {view['realized']['accuracy']:.3f}")
