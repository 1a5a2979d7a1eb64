"""The serving image's server, MLServer with our verifying runtime, as a loopback process (the local loop, and the
tests that serve a real model).

Started exactly as the ServingRuntime starts it (``manifests.runtime_environment``): ``mlserver start`` on an empty
folder, the model's settings from the environment, the model files in a folder of their own (KServe's
``/mnt/models``). The interpreter is the serving venv's (``make serving-venv``: requirements/serving-constraints.txt,
``GATED_TRAINING_SERVING_BIN``), never the training venv's: their web stacks conflict.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gated_training import logs
from gated_training.serving import manifests as kserve

SERVING_BIN = Path(os.environ.get("GATED_TRAINING_SERVING_BIN", ".venv-serving/bin")).absolute()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mounted_copy(version_folder: Path, mount: Path) -> Path:
    """What KServe's storage initializer leaves in /mnt/models for storageUri <version>/serve."""
    shutil.copytree(version_folder / "serve", mount)
    return mount


class MLServer:
    def __init__(
        self,
        root: Path,
        *,
        model_folder: Path,
        name: str,
        registry_uri: str,
        model_name: str,
        version: str,
        manifest_sha256: str,
    ) -> None:
        if not (SERVING_BIN / "mlserver").exists():
            raise AssertionError(f"{SERVING_BIN}/mlserver is missing: `make serving-venv` installs the serving stack")
        self.http, self.grpc, self.metrics = free_port(), free_port(), free_port()
        empty = root / "mlserver-root"
        empty.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLSERVER_")}
        env.update({item["name"]: item["value"] for item in kserve.runtime_environment()})
        env.update(
            {
                item["name"]: item["value"]
                for item in kserve.model_environment(
                    registry_uri=registry_uri, model_name=model_name, version=version, manifest_sha256=manifest_sha256
                )
            }
        )
        env.update(
            {
                "MLSERVER_MODEL_NAME": name,
                "MLSERVER_MODEL_URI": str(model_folder),
                "MLSERVER_HTTP_PORT": str(self.http),
                "MLSERVER_GRPC_PORT": str(self.grpc),
                "MLSERVER_METRICS_PORT": str(self.metrics),
                "MLSERVER_METRICS_DIR": str(root / "metrics"),
                "PATH": f"{SERVING_BIN}:{env.get('PATH', '')}",
            }
        )
        # The caller's log format (a terminal gets text); the image's ServingRuntime sets JSON.
        env[logs.FORMAT_ENV] = logs.log_format()
        if logs.log_format() == "json":
            env["MLSERVER_LOGGING_SETTINGS"] = str(Path(__file__).with_name("mlserver-logging.json"))
        else:
            env.pop("MLSERVER_LOGGING_SETTINGS", None)
        self.log_path = root / "mlserver.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(SERVING_BIN / "mlserver"), "start", str(empty)],
            cwd=empty,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.http}"
        self.name = name

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> bool:
        """True once the model is ready; False when the server exits first (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/v2/models/{self.name}/ready", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        return False

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.url}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str, port: int | None = None) -> tuple[int, str]:
        url = f"http://127.0.0.1:{port or self.http}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def __enter__(self) -> "MLServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
