"""The pipeline's steps, defined once: id, display name, resources, what each step touches, where
it sits on the main line and which outcome a run stopping at it has.

``pipelines/cluster.configure_step`` reads it to configure a task; ``step_records`` reads the
deadlines; the local runner reads which steps can stop a run; the benchmarks and the tests read
the step order and the tasks each outcome runs. A component's function name is its step id with
``_`` for ``-`` (a test checks every component against this table).
"""

from __future__ import annotations

from dataclasses import dataclass

from gated_training.decisions import Outcome

HOUR = 3600


@dataclass(frozen=True, kw_only=True)
class StepResources:
    """Kubernetes requests and limits for one step's pod."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


@dataclass(frozen=True, kw_only=True)
class Step:
    id: str
    display_name: str
    resources: StepResources
    after: str | None = None  # the step before it on the main line (None: the first)
    uses_gcs: bool = False  # reads or writes gs:// itself (data, suite, registry)
    uses_mlflow: bool = False  # talks to MLflow: its credentials
    uses_registry: bool = False  # reads or writes the registry: the signing key
    stops_run: str | None = None  # a gate: the outcome of a run that stops here, as `submit --wait` says it
    deadline_seconds: int = HOUR
    # engine=spark runs its work in Spark: in the step's process locally, in a SparkApplication on a cluster
    # compiled with SPARK_IMAGE (pipelines/cluster.py)
    runs_on_spark: bool = False


def _resources(cpu_request: str, cpu_limit: str, memory_request: str, memory_limit: str) -> StepResources:
    return StepResources(
        cpu_request=cpu_request, cpu_limit=cpu_limit, memory_request=memory_request, memory_limit=memory_limit
    )


# Requests cover the peak RSS measured at 1M rows × 30 columns; each limit is 1.5× the peak measured at 5M rows
# (or, where 5M was not measured, the peak the growth from 1M to 3M rows predicts there), rounded up to a whole GiB
# (docs/scaling.md, "Growth measured here"). Tune from the
# "[gated-training] <step>: wall …, CPU …, peak RSS …" line each step logs, or override per step with
# RESOURCES_FILE at compile time.
STEPS: tuple[Step, ...] = (
    Step(
        id="validate-data",
        display_name="Validate data (GX)",
        resources=_resources("1", "2", "1Gi", "3Gi"),
        uses_gcs=True,
        stops_run=f"{Outcome.BLOCKED} by the data gate",
        runs_on_spark=True,
    ),
    Step(
        id="check-drift",
        display_name="Drift gate",
        resources=_resources("500m", "2", "1Gi", "3Gi"),
        after="validate-data",
        uses_gcs=True,
        uses_registry=True,
        stops_run=f"{Outcome.BLOCKED} by the drift gate, or {Outcome.SKIPPED}: no new data",
        runs_on_spark=True,
    ),
    Step(
        id="engineer-features",
        display_name="Engineer features",
        resources=_resources("500m", "2", "1Gi", "3Gi"),
        after="check-drift",
        runs_on_spark=True,
    ),
    # n_jobs=-1 uses the cgroup's CPU quota
    Step(
        id="train-model",
        display_name="Train model (MLflow)",
        resources=_resources("2", "4", "2Gi", "5Gi"),
        after="engineer-features",
        uses_mlflow=True,
        deadline_seconds=4 * HOUR,
        runs_on_spark=True,
    ),
    Step(
        id="evaluate-model",
        display_name="Evaluate and gate",
        resources=_resources("500m", "2", "1Gi", "3Gi"),
        after="train-model",
        uses_gcs=True,
        uses_mlflow=True,
        uses_registry=True,
        stops_run=f"{Outcome.BLOCKED} by the model gate",
        runs_on_spark=True,
    ),
    Step(
        id="deploy-model",
        display_name="Deploy to registry",
        resources=_resources("500m", "2", "1Gi", "3Gi"),
        after="evaluate-model",
        uses_gcs=True,
        uses_mlflow=True,
        uses_registry=True,
        stops_run=f"{Outcome.DEPLOYED} (or {Outcome.BLOCKED}: the champion changed during the run)",
    ),
    # Only with a serving namespace: KServe rollout of the new champion, a canary first.
    Step(
        id="serve-model",
        display_name="Serve with KServe",
        resources=_resources("100m", "1", "256Mi", "1Gi"),
        after="deploy-model",
        uses_gcs=True,
        uses_registry=True,
        stops_run=f"{Outcome.DEPLOYED} and serving (or {Outcome.BLOCKED}: the new version never became Ready)",
    ),
)
# The monitoring pipeline's own step (its retrain is the training line above, nested).
MONITORING_STEPS: tuple[Step, ...] = (
    Step(
        id="monitor-window",
        display_name="Monitor the served model",
        # A window's calls are decoded in memory: about 260 MiB per 100k calls (docs/benchmarks-monitoring.md), so
        # max_window_rows (2M) fits in 6 GiB; the limit leaves the rest as headroom.
        resources=_resources("1", "2", "1Gi", "8Gi"),
        uses_gcs=True,
        uses_mlflow=True,
        uses_registry=True,
    ),
)
STEP: dict[str, Step] = {step.id: step for step in (*STEPS, *MONITORING_STEPS)}
# The training line, in the order it runs.
MAIN_LINE: tuple[str, ...] = tuple(step.id for step in STEPS)
# The gates: a run stops at one of them and that step writes the run summary.
GATE_STEPS: tuple[str, ...] = tuple(step.id for step in STEPS if step.stops_run)


def tasks_ending_at(step_id: str | None) -> list[str]:
    """The tasks a run that stops at ``step_id`` completes, sorted (as the local runner lists them):
    the step and every step before it. ``None``: a run whose first step failed (no task completed)."""
    tasks = []
    while step_id is not None:
        tasks.append(step_id)
        step_id = STEP[step_id].after
    return sorted(tasks)


def component_name(step_id: str) -> str:
    """The component function of a step: ``validate-data`` → ``validate_data``."""
    return step_id.replace("-", "_")
