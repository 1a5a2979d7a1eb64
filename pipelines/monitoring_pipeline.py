"""monitor-window, then, when it says ``retrain``, the training pipeline nested under one dsl.If: the retrain's
candidate faces every gate a scheduled training run faces (docs/monitoring.md).

Why nested rather than a new run submitted through the KFP API from inside the cluster: a pipeline used as a
component compiles to a sub-DAG that every backend from 2.2 runs, and kfp.local runs it too, so the retrain path is
tested on the YAML users upload; a submission needs the pipelines API reachable from the pod, a projected
service-account token with audience ``pipelines.kubeflow.org`` (``KF_PIPELINES_SA_TOKEN_PATH``) and a PodDefault per
profile in multi-user Kubeflow, and the pipeline uploaded under a name the step can find (``get_pipeline_id`` lists
shared pipelines only). The price: the retrain's tasks appear inside the monitoring run, and the run lasts as long
as the retrain; a recurring run with ``max_concurrency`` 1 holds the next window until it ends, which the
ticket's one-retrain-at-a-time rule wants anyway.
"""

import os

from kfp import dsl

from components.monitor_window import monitor_window
from gated_training.config import (
    MONITORING_FORM,
    DriftPolicy,
    FeatureSettings,
    GateThresholds,
    ModelSettings,
    MonitoringRunSettings,
    MonitoringSettings,
    RunSettings,
    ServingSettings,
    SplitSettings,
    group_defaults,
)
from gated_training.decisions import WindowOutcome
from pipelines.cluster import ClusterSettings, configure_step
from pipelines.run_form import pipeline_docstring
from pipelines.training_pipeline import training_pipeline

PIPELINE_NAME = "gated-training-monitoring"
CLUSTER = ClusterSettings.from_env(os.environ)
RUN = MonitoringRunSettings()
TRAINING = RunSettings()
# A retrain starts because the live inputs moved or the outcomes did: its drift gate must report that shift, not
# stop on it (drift_action or label_shift_action block would block every retrain monitoring starts). The schema
# contract still blocks, the data gate and the model gate still judge the candidate (docs/monitoring.md).
RETRAIN_DRIFT = {**group_defaults(DriftPolicy), "drift_action": "warn", "label_shift_action": "warn"}


def monitoring_pipeline(
    prediction_log_uri: str = RUN.prediction_log_uri,
    labels_uri: str = RUN.labels_uri,
    window_end: str = RUN.window_end,
    registry_uri: str = RUN.registry_uri,
    model_name: str = RUN.model_name,
    mlflow_tracking_uri: str = RUN.mlflow_tracking_uri,
    mlflow_experiment: str = RUN.mlflow_experiment,
    notify_webhook_url: str = RUN.notify_webhook_url,
    monitoring: dict = group_defaults(MonitoringSettings),
    gate: dict = group_defaults(GateThresholds),
    drift: dict = RETRAIN_DRIFT,
    features: dict = group_defaults(FeatureSettings),
    split: dict = group_defaults(SplitSettings),
    training: dict = group_defaults(ModelSettings),
    serving: dict = group_defaults(ServingSettings),
):
    watched = monitor_window(
        prediction_log_uri=prediction_log_uri,
        labels_uri=labels_uri,
        window_end=window_end,
        registry_uri=registry_uri,
        model_name=model_name,
        mlflow_tracking_uri=mlflow_tracking_uri,
        mlflow_experiment=mlflow_experiment,
        notify_webhook_url=notify_webhook_url,
        monitoring=monitoring,
        drift=drift,
        serving=serving,
    )
    configure_step(watched, CLUSTER)

    with dsl.If(watched.outputs["Output"] == WindowOutcome.RETRAIN, name="retrain"):
        training_pipeline(
            data_uri=watched.outputs["retrain_data_uri"],
            target_column=watched.outputs["retrain_target_column"],
            suite_uri=watched.outputs["retrain_suite_uri"],
            suite_sha256=watched.outputs["retrain_suite_sha256"],
            max_input_mb=TRAINING.max_input_mb,
            engine=TRAINING.engine,
            min_quality_score=TRAINING.min_quality_score,
            registry_uri=registry_uri,
            model_name=model_name,
            mlflow_tracking_uri=mlflow_tracking_uri,
            mlflow_experiment=TRAINING.mlflow_experiment,
            pipeline_version=TRAINING.pipeline_version,
            notify_webhook_url=notify_webhook_url,
            retrain_ticket=watched.outputs["retrain_ticket"],
            gate=gate,
            drift=drift,
            features=features,
            split=split,
            training=training,
            serving=serving,
        )


monitoring_pipeline.__doc__ = pipeline_docstring(
    "Watch the served model on one window of its prediction log and its late labels; retrain through every gate "
    "when it drifted or lost accuracy.",
    MONITORING_FORM,
)
monitoring_pipeline = dsl.pipeline(
    name=PIPELINE_NAME,
    description="Per served version: the version's own suite, schema and drift profile on the logged calls, "
    "prediction drift, realized accuracy from late labels and an estimate while they lag; ok, warn, alert or "
    "retrain, a retrain being the training pipeline nested, every gate included.",
)(monitoring_pipeline)
