"""validate → drift → features → train → evaluate → deploy (→ serve), gated by one dsl.If per gate on its string
output.

Made for every KFP backend from 2.2 to 2.17 and for the fewest pods a run can start: each gate
step writes the run's summary (and notifies) itself when the run stops at it, so a gate needs
one condition and no report branch; each step posts its own failure before it re-raises, so no
exit handler (``PipelineTaskFinalStatus`` needs backend 2.14) is needed; no task retry policies
(ignored before 2.5, and inside branches before 2.14): network retries happen inside the steps.
On the deploy path a run starts 17 pods (19 when it serves) (a driver per DAG, a driver and an executor per task).
"""

import os

from kfp import dsl

from components.check_drift import check_drift
from components.deploy_model import deploy_model
from components.engineer_features import engineer_features
from components.evaluate_model import evaluate_model
from components.serve_model import serve_model
from components.train_model import train_model
from components.validate_data import validate_data
from gated_training.config import (
    DriftPolicy,
    FeatureSettings,
    GateThresholds,
    ModelSettings,
    RunSettings,
    ServingSettings,
    SplitSettings,
    group_defaults,
)
from gated_training.decisions import DataGate, DeployGate, DriftGate, ModelGate
from pipelines.cluster import ClusterSettings, configure_step
from pipelines.run_form import pipeline_docstring

PIPELINE_NAME = "gated-training"
# Compile-time cluster options (secrets, resources) from the environment; see pipelines/cluster.py.
CLUSTER = ClusterSettings.from_env(os.environ)
RUN = RunSettings()


def training_pipeline(
    data_uri: str = RUN.data_uri,
    target_column: str = RUN.target_column,
    suite_uri: str = RUN.suite_uri,
    suite_sha256: str = RUN.suite_sha256,
    max_input_mb: float = RUN.max_input_mb,
    engine: str = RUN.engine,
    min_quality_score: float = RUN.min_quality_score,
    registry_uri: str = RUN.registry_uri,
    model_name: str = RUN.model_name,
    mlflow_tracking_uri: str = RUN.mlflow_tracking_uri,
    mlflow_experiment: str = RUN.mlflow_experiment,
    pipeline_version: str = RUN.pipeline_version,
    notify_webhook_url: str = RUN.notify_webhook_url,
    retrain_ticket: str = RUN.retrain_ticket,
    gate: dict = group_defaults(GateThresholds),
    drift: dict = group_defaults(DriftPolicy),
    features: dict = group_defaults(FeatureSettings),
    split: dict = group_defaults(SplitSettings),
    training: dict = group_defaults(ModelSettings),
    serving: dict = group_defaults(ServingSettings),
):
    validation = validate_data(
        data_uri=data_uri,
        suite_uri=suite_uri,
        target_column=target_column,
        min_quality_score=min_quality_score,
        suite_sha256=suite_sha256,
        max_input_mb=max_input_mb,
        engine=engine,
        notify_webhook_url=notify_webhook_url,
        model_name=model_name,
        retrain_ticket=retrain_ticket,
    )
    configure_step(validation, CLUSTER)

    with dsl.If(validation.outputs["Output"] == DataGate.PASSED, name="data-gate-passed"):
        drift_gate = check_drift(
            dataset=validation.outputs["dataset"],
            validation_report=validation.outputs["validation_report"],
            target_column=target_column,
            registry_uri=registry_uri,
            model_name=model_name,
            drift=drift,
            engine=engine,
            notify_webhook_url=notify_webhook_url,
            retrain_ticket=retrain_ticket,
        )
        configure_step(drift_gate, CLUSTER)

        with dsl.If(drift_gate.outputs["Output"] == DriftGate.TRAIN, name="drift-gate-passed"):
            engineered = engineer_features(
                dataset=validation.outputs["dataset"],
                drift_report=drift_gate.outputs["drift_report"],
                target_column=target_column,
                features=features,
                split=split,
                engine=engine,
                notify_webhook_url=notify_webhook_url,
                model_name=model_name,
                retrain_ticket=retrain_ticket,
            )
            configure_step(engineered, CLUSTER)
            trained = train_model(
                train_data=engineered.outputs["train_data"],
                test_data=engineered.outputs["test_data"],
                preprocessor=engineered.outputs["preprocessor"],
                feature_metadata=engineered.outputs["feature_metadata"],
                drift_report=drift_gate.outputs["drift_report"],
                target_column=target_column,
                training=training,
                mlflow_tracking_uri=mlflow_tracking_uri,
                mlflow_experiment=mlflow_experiment,
                pipeline_version=pipeline_version,
                notify_webhook_url=notify_webhook_url,
                model_name=model_name,
                retrain_ticket=retrain_ticket,
                engine=engine,
            )
            configure_step(trained, CLUSTER)
            evaluation = evaluate_model(
                model=trained.outputs["model"],
                test_data=engineered.outputs["test_data"],
                training_report=trained.outputs["training_report"],
                drift_report=drift_gate.outputs["drift_report"],
                feature_metadata=engineered.outputs["feature_metadata"],
                validation_report=validation.outputs["validation_report"],
                drift_html=drift_gate.outputs["drift_html"],
                target_column=target_column,
                gate=gate,
                registry_uri=registry_uri,
                model_name=model_name,
                notify_webhook_url=notify_webhook_url,
                retrain_ticket=retrain_ticket,
                engine=engine,
            )
            configure_step(evaluation, CLUSTER)

            with dsl.If(evaluation.outputs["Output"] == ModelGate.DEPLOY, name="model-gate-passed"):
                deployment = deploy_model(
                    model=trained.outputs["model"],
                    train_data=engineered.outputs["train_data"],
                    test_data=engineered.outputs["test_data"],
                    feature_metadata=engineered.outputs["feature_metadata"],
                    training_report=trained.outputs["training_report"],
                    gate_decision=evaluation.outputs["gate_decision"],
                    validation_report=validation.outputs["validation_report"],
                    drift_report=drift_gate.outputs["drift_report"],
                    target_column=target_column,
                    registry_uri=registry_uri,
                    model_name=model_name,
                    pipeline_version=pipeline_version,
                    serving=serving,
                    notify_webhook_url=notify_webhook_url,
                    retrain_ticket=retrain_ticket,
                )
                configure_step(deployment, CLUSTER)

                with dsl.If(deployment.outputs["Output"] == DeployGate.SERVE, name="serving-namespace-set"):
                    served = serve_model(
                        deployment=deployment.outputs["deployment"],
                        validation_report=validation.outputs["validation_report"],
                        gate_decision=evaluation.outputs["gate_decision"],
                        drift_report=drift_gate.outputs["drift_report"],
                        registry_uri=registry_uri,
                        model_name=model_name,
                        serving=serving,
                        notify_webhook_url=notify_webhook_url,
                        retrain_ticket=retrain_ticket,
                    )
                    configure_step(served, CLUSTER)


# The parameters' descriptions come from the settings classes (config.py), the one place they are written.
training_pipeline.__doc__ = pipeline_docstring(
    "Train a classifier and deploy it only when the data gate, the drift gate and the model gate pass."
)
training_pipeline = dsl.pipeline(
    name=PIPELINE_NAME,
    description="Tabular classification: GX data gate, drift gate against the champion's reference profile, "
    "MLflow-tracked training, model gate on evidence against thresholds, the prior predictor and the champion, "
    "then a signed, immutable registry deploy.",
)(training_pipeline)
