"""How a real KFP backend (2.2 to 2.17, Argo engine) runs a compiled PipelineSpec, as nodes.

Read from kubeflow/pipelines ``backend/src/v2/compiler/argocompiler`` (``dag.go``,
``container.go``; the same rules at tags 2.2.0 and 2.17.0) and
``backend/src/apiserver/model/run.go`` (how Argo phases become API states):

- the workflow starts with a DAG driver pod ``root-driver``, then the ``root`` DAG;
- a task whose component is a DAG (a ``dsl.If`` branch: ``condition-N``) runs a DAG driver pod
  ``<task>-driver``, which evaluates ``triggerPolicy.condition``; false: the ``<task>`` node is
  Skipped and nothing inside it starts;
- a container task runs a container driver pod ``<task>-driver`` and the ``<task>`` node (the
  executor template, itself a DAG) with one pod, ``executor``;
- ``task_details`` carry each node's Argo display name and its phase as an API RuntimeState
  (Succeeded → SUCCEEDED, Skipped → SKIPPED, Failed/Error → FAILED).

The stand-in API server builds ``task_details`` with this, and the pod-count test counts pods
with it: one walker, read from the backend's source, for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

API_STATE = {
    "Succeeded": "SUCCEEDED",
    "Skipped": "SKIPPED",
    "Failed": "FAILED",
    "Error": "FAILED",
    "Running": "RUNNING",
    "Pending": "PENDING",
    "Omitted": "RUNTIME_STATE_UNSPECIFIED",
}
CONDITION = re.compile(r"^inputs\.parameter_values\['pipelinechannel--(.+)-Output'\] == '(.*)'$")


@dataclass(frozen=True)
class Node:
    name: str  # the Argo node's display name, as task_details carry it
    phase: str  # Argo phase
    pod: bool  # the node is a pod (drivers and executors); DAG nodes are not

    @property
    def state(self) -> str:
        return API_STATE[self.phase]


def _ordered(tasks: dict[str, Any]) -> list[str]:
    """Task keys in dependency order (ties by name, as the compiler sorts them)."""
    done: list[str] = []
    remaining = dict(tasks)
    while remaining:
        ready = sorted(
            name
            for name, task in remaining.items()
            if all(dep in done or dep not in tasks for dep in task.get("dependentTasks", []))
        )
        if not ready:
            raise ValueError(f"dependency cycle among {sorted(remaining)}")
        done.append(ready[0])
        del remaining[ready[0]]
    return done


def run_nodes(
    spec: dict[str, Any], outputs: dict[str, str], failing: str | None = None, workflow: str = "gated-training-x7k2p"
) -> tuple[list[Node], str]:
    """(the nodes a run creates, the run's state) when each gate task returns ``outputs[task]`` and
    ``failing`` (a task key) fails. Tasks after a failure never start."""
    nodes = [Node(workflow, "Running", False), Node("root-driver", "Succeeded", True)]
    failed = False

    def run_dag(component: dict[str, Any]) -> None:
        nonlocal failed
        tasks = component.get("dag", {}).get("tasks", {})
        for name in _ordered(tasks):
            if failed:
                return
            task = tasks[name]
            target = spec["components"][task["componentRef"]["name"]]
            nodes.append(Node(f"{name}-driver", "Succeeded", True))
            if "dag" in target:
                condition = task.get("triggerPolicy", {}).get("condition")
                if condition and not _holds(condition, outputs):
                    nodes.append(Node(name, "Skipped", False))
                    continue
                index = len(nodes)
                nodes.append(Node(name, "Running", False))
                run_dag(target)
                nodes[index] = Node(name, "Failed" if failed else "Succeeded", False)
            else:
                phase = "Failed" if name == failing else "Succeeded"
                nodes.append(Node(name, phase, False))
                nodes.append(Node("executor", phase, True))
                failed = failed or phase == "Failed"

    nodes.append(Node("root", "Running", False))
    run_dag(spec["root"])
    phase = "Failed" if failed else "Succeeded"
    nodes = [Node(n.name, phase, n.pod) if n.phase == "Running" else n for n in nodes]
    return nodes, API_STATE[phase]


def _holds(condition: str, outputs: dict[str, str]) -> bool:
    condition = " ".join(condition.split())
    if condition.startswith("!(") and condition.endswith(")"):  # a dsl.Else branch
        return not _holds(condition[2:-1], outputs)
    match = CONDITION.match(condition)
    if not match:
        raise ValueError(f"condition the stand-in cannot evaluate: {condition}")
    task, literal = match.groups()
    return outputs.get(task) == literal


def pods(nodes: list[Node]) -> int:
    return sum(node.pod for node in nodes)
