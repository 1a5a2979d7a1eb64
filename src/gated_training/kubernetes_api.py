"""The Kubernetes API as every caller reaches it (serve-model's KServe objects, the Spark steps' applications):
credentials from the pod, else a kubeconfig, else an explicit endpoint; and an error's Status message. The
``kubernetes`` client (kfp installs it) is imported inside the functions."""

from __future__ import annotations

import json
from typing import Any


def api_client(api_url: str, error: type[Exception]) -> Any:  # -> kubernetes.client.ApiClient
    """A client for ``api_url`` (an already authenticated endpoint: `kubectl proxy`, or the tests' stand-in), or
    for the pod's service account, else the workstation's kubeconfig; ``error`` when there is none."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if api_url:
        configuration.host = api_url.rstrip("/")
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)  # a pipeline pod
        except config.ConfigException:
            try:
                config.load_kube_config(client_configuration=configuration)  # a workstation
            except (config.ConfigException, OSError) as exc:
                raise error(f"no Kubernetes credentials: not in a pod and no kubeconfig ({exc})") from exc
    return client.ApiClient(configuration)


def status_message(exc: Any) -> str:
    """The ``message`` of the API server's Status body in an ``ApiException``, else its raw body."""
    message = exc.body.decode() if isinstance(exc.body, bytes) else exc.body
    try:
        return str(json.loads(message).get("message", message))
    except (TypeError, ValueError, AttributeError):
        return str(message)
