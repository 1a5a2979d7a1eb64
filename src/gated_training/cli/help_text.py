"""Each subcommand's help page: its description, exit codes and an example (argparse epilogs)."""

from __future__ import annotations

import argparse
import re

RUN_EXITS = "0 deployed, blocked or skipped (a blocked run deployed nothing, on purpose); 1 failed; 2 bad options"
REGISTRY_EXITS = "0 done; 1 the registry refused it (unsigned, tampered, unknown version…); 2 bad options"
SERVING_EXITS = (
    "0 done and Ready; 1 Kubernetes refused it or the service did not become Ready (the message says "
    "whether the registry or the InferenceService is behind, and the repair); 2 bad options"
)
KUBEFLOW_EXITS = (
    "0 done; 1 the backend refused or could not be reached (the message says what to do); "
    "2 bad options or parameters, found before anything is sent"
)

# subcommand path → (exit codes, examples)
PAGES: dict[str, tuple[str, list[str]]] = {
    "run": (
        RUN_EXITS,
        [
            "gated-training run --params data/german_credit.params.yaml",
            "gated-training run --data orders.csv --target churned --min-accuracy 0.8 --set drift_action=warn",
        ],
    ),
    "suite init": (
        "0 drafted; 1 the data cannot be read; 2 bad options or the suite exists (--force)",
        ["gated-training suite init --data orders.csv --target churned"],
    ),
    "check-drift": (
        "0 no retraining needed; 3 retraining advised (drift, no champion, or no profile); "
        "1 the data or registry cannot be read; 2 bad options",
        [
            "gated-training check-drift --data gs://acme/orders/latest.parquet --target churned "
            "--registry gs://acme/registry --report drift.html"
        ],
    ),
    "history": (
        "0 listed; 1 a version was refused or the pointer is broken (listed on stderr); 2 bad options",
        ["gated-training history --registry gs://acme/registry"],
    ),
    "rollback": (
        REGISTRY_EXITS + "; with --serving-namespace, 1 also when the InferenceService could not follow "
        "(the message names what is behind and the repair)",
        [
            'gated-training rollback --registry gs://acme/registry --reason "bad predictions"',
            'gated-training rollback --registry gs://acme/registry --reason "bad predictions" --serving-namespace '
            "team-ml",
        ],
    ),
    "promote": (
        REGISTRY_EXITS,
        [
            'gated-training promote 20261123T174404293543Z-4adf56ff --reason "approved by review" '
            "--registry gs://acme/registry"
        ],
    ),
    "sink": (
        "0 stopped after writing everything it held; 1 stopped with events it could not write (the log says "
        "how many); 2 bad options",
        [
            "gated-training sink --log-uri .gated-training/prediction-log",
            "gated-training sink --log-uri gs://acme/prediction-log --host 0.0.0.0 --port 8080",
        ],
    ),
    "monitor": (
        "0 ok, warn, no_traffic or no_labels_yet; 1 the run failed; 2 bad options; 3 alert or retrain (the "
        "nested training run's outcome is in summary.json's retrain_run)",
        [
            "gated-training monitor --log-uri .gated-training/prediction-log --labels .gated-training/labels",
            "gated-training monitor --params cluster.monitoring.params.yaml --window-end 2026-12-04T18:00:00Z",
        ],
    ),
    "loop": (
        "0 the loop ran (the monitoring outcome and the retrain's are in loop-summary.json); 1 a stage failed",
        ["make loop", "gated-training loop --workdir .gated-training/loop --calls 2000 --changed-outcomes 0.5"],
    ),
    "serving status": (
        "0 the InferenceService serves the champion (or its canary); 1 out of step (the repair is "
        "printed) or unreachable; 2 bad options",
        ["gated-training serving status --namespace team-ml --registry gs://acme/registry"],
    ),
    "serving promote": (
        SERVING_EXITS,
        ["gated-training serving promote --namespace team-ml --registry gs://acme/registry"],
    ),
    "serving rollback": (
        SERVING_EXITS,
        ['gated-training serving rollback --namespace team-ml --registry gs://acme/registry --reason "latency"'],
    ),
    "serving sync": (
        SERVING_EXITS,
        [
            "gated-training serving sync --namespace team-ml --registry gs://acme/registry "
            "--kube-api http://127.0.0.1:8001"
        ],
    ),
    "serving pod-monitor": (
        "0 printed; 2 a bad namespace or mode",
        ["gated-training serving pod-monitor --namespace team-ml --mode Knative | kubectl apply -f -"],
    ),
    "sync-mlflow": (
        REGISTRY_EXITS,
        ["gated-training sync-mlflow --registry gs://acme/registry --tracking-uri https://mlflow.acme.internal"],
    ),
    "cleanup": (REGISTRY_EXITS, ["gated-training cleanup --registry gs://acme/registry --delete"]),
    "sign-legacy": (
        REGISTRY_EXITS,
        ["GATED_TRAINING_REGISTRY_KEY_FILE=key gated-training sign-legacy --registry gs://acme/registry"],
    ),
    "upload": (
        KUBEFLOW_EXITS,
        ["gated-training upload --host https://kubeflow.acme.internal/pipeline --namespace team-ml"],
    ),
    "submit": (
        KUBEFLOW_EXITS + "; with --wait, 1 unless the run succeeded",
        ["gated-training submit --params cluster.params.yaml --wait --service-account pipeline-runner"],
    ),
    "schedule create": (
        KUBEFLOW_EXITS,
        ["gated-training schedule create --cron '0 0 2 * * *' --params cluster.params.yaml"],
    ),
    "schedule list": (KUBEFLOW_EXITS, ["gated-training schedule list --namespace team-ml"]),
    "schedule enable": (KUBEFLOW_EXITS, ["gated-training schedule enable gated-training-nightly"]),
    "schedule disable": (KUBEFLOW_EXITS, ["gated-training schedule disable gated-training-nightly"]),
    "schedule delete": (KUBEFLOW_EXITS, ["gated-training schedule delete gated-training-nightly"]),
}


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf subcommand parser by its path ("schedule create")."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                path = f"{prefix}{name}"
                nested = subcommands(child, f"{path} ")
                found.update(nested or {path: child})
    return found


def _summaries(parser: argparse.ArgumentParser) -> dict[int, str]:
    """The one-line help each subcommand has in its parent's list, by parser identity."""
    found: dict[int, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                child = action.choices[choice.dest]
                found[id(child)] = choice.help or ""
                found.update(_summaries(child))
    return found


def add_pages(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand a description (its one-line help), its exit codes and an example."""
    summaries = _summaries(parser)
    for path, child in subcommands(parser).items():
        child.description = child.description or summaries.get(id(child), "")
        exits, examples = PAGES[path]
        child.formatter_class = argparse.RawDescriptionHelpFormatter
        child.epilog = (
            f"exit codes: {exits}\n\nexample"
            + ("s" if len(examples) > 1 else "")
            + ":\n"
            + "\n".join(f"  {example}" for example in examples)
        )


def synopsis(width: int = 110) -> str:
    """Every command's usage line, as argparse prints it at ``width`` columns: docs/parameters.md's synopsis
    (``make docs`` writes it; a test compares it with the parser)."""
    from gated_training.cli import build_parser

    lines: list[str] = []

    def visit(parser: argparse.ArgumentParser) -> None:
        subcommands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        if not subcommands:
            parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=width)
            # argparse aligns wrapped lines under the command after "usage: "; without the prefix, so are they.
            usage = parser.format_usage().removeprefix("usage: ").rstrip()
            lines.append(re.sub(r"\n {%d}" % len("usage: "), "\n", usage))
            return
        for child in dict.fromkeys(subcommands[0].choices.values()):
            visit(child)

    visit(build_parser())
    return "\n".join(lines) + "\n"
