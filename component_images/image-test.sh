#!/usr/bin/env bash
# Prove the component image runs the pipeline: build it with buildah (chroot isolation) on a
# debootstrapped Debian base, then, inside it, as the non-root user and with no network, run
# the compiled pipeline on the sample three times so that all seven components execute.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-localhost/kfp-gated-training:test}"
SERVING_IMAGE="${SERVING_IMAGE:-localhost/kfp-gated-training-serving:test}"
SPARK_TEST_IMAGE="${SPARK_TEST_IMAGE:-localhost/kfp-gated-training-spark:test}"
PIPELINE_YAML=compiled/training_pipeline.yaml

need() { command -v "$1" >/dev/null 2>&1; }
if ! need buildah || ! need debootstrap || ! need ip; then
  if [ "$(id -u)" = 0 ] && need apt-get; then
    echo "installing buildah, debootstrap and iproute2 (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap iproute2 >/dev/null
  else
    echo "error: image-test needs buildah, debootstrap and ip (apt-get install buildah debootstrap iproute2)" >&2
    exit 1
  fi
fi

base=$(component_images/debian-base.sh)
ca="${EXTRA_CA_CERT:-}"
if [ -z "$ca" ] && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  ca=/etc/ssl/certs/ca-certificates.crt  # the host's bundle: trusts whatever proxy the host trusts
fi
start=$(date +%s)
IMAGE="$IMAGE" SERVING_IMAGE="$SERVING_IMAGE" BUILDER=buildah BASE_IMAGE="$base" EXTRA_CA_CERT="$ca" component_images/build-image.sh
echo "built in $(( $(date +%s) - start )) s"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE"
buildah inspect --type image --format '{{range $k, $v := .OCIv1.Config.Labels}}{{$k}}={{$v}}{{"\n"}}{{end}}' "$IMAGE" \
  | grep -E 'org.opencontainers.image.(source|version|revision)=' || { echo "error: OCI labels missing" >&2; exit 1; }
[ "$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE")" = 10001 ] \
  || { echo "error: the image does not run as the non-root user 10001" >&2; exit 1; }

container=$(buildah from --quiet "$IMAGE")
trap 'buildah rm "$container" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet "$container" "$PIPELINE_YAML" /app/compiled/training_pipeline.yaml
buildah copy --quiet "$container" compiled/monitoring_pipeline.yaml /app/compiled/monitoring_pipeline.yaml
buildah copy --quiet "$container" component_images/monitor-smoke.py /app/monitor-smoke.py

for tool in gcc cc pip; do  # multi-stage: nothing to build or install with in the final image
  if buildah run --isolation chroot "$container" -- sh -c "command -v $tool" >/dev/null 2>&1; then
    echo "error: $tool is present in the runtime image" >&2; exit 1
  fi
done

# chroot isolation cannot take --network none: run buildah itself in an empty network namespace.
offline() { unshare --net -- "$@"; }
offline true || { echo "error: cannot create a network namespace (unshare --net) to run the image offline" >&2; exit 1; }

run_in_image() {  # name, expected outcome, the exact tasks that must run (comma-separated), extra args...
  local name=$1 expected=$2 tasks=$3; shift 3
  local workdir=/tmp/image-test-$name
  echo "== $name: gated-training run inside $IMAGE (user 10001, no network)"
  # The image logs JSON (GATED_TRAINING_LOG_FORMAT=json): the CLI's every line, and each step's, is one object.
  offline buildah run --isolation chroot --user 10001:0 "$container" -- \
    gated-training run --params data/german_credit.params.yaml --workdir "$workdir" "$@" \
    > "/tmp/image-test-$name.cli.log" || true
  cat "/tmp/image-test-$name.cli.log"
  offline buildah run --isolation chroot --user 10001:0 "$container" -- mkdir -p "$workdir/host"
  buildah copy --quiet "$container" "/tmp/image-test-$name.cli.log" "$workdir/host/cli.log"
  offline buildah run --isolation chroot --user 10001:0 "$container" -- python3 - "$workdir/summary.json" "$expected" "$tasks" <<'PY'
import json, pathlib, sys
summary = json.load(open(sys.argv[1]))
expected, tasks = sys.argv[2], sys.argv[3].split(",")
workdir = pathlib.Path(sys.argv[1]).parent
keys = {"time", "severity", "message", "event", "logger", "step", "run_id", "model", "version", "fields"}
for line in (workdir / "host" / "cli.log").read_text().splitlines():
    if line.strip() and set(json.loads(line)) != keys:
        sys.exit(f"image test failed: a CLI line outside the log schema: {line[:200]}")
# kfp.local frames each step's lines (indented) in last-run.log; every framed line is one object of the schema.
steps = [json.loads(l) for l in (workdir / "last-run.log").read_text().splitlines() if l.startswith("    {")]
usage = sorted(r["step"] for r in steps if r["event"] == "step.usage")
if usage != sorted(tasks) or any(set(r) != keys for r in steps) or "    Traceback" in (workdir / "last-run.log").read_text():
    sys.exit(f"image test failed: step logs not in the schema (step.usage from {usage}, expected {tasks})")
if summary["outcome"] != expected or summary["tasks_ran"] != tasks:
    sys.exit(f"image test failed: outcome {summary['outcome']} (expected {expected}), tasks {summary['tasks_ran']} "
             f"(expected {tasks}), "
             f"reasons {summary['reasons']}")
print(f"ok: {expected}; tasks: {', '.join(summary['tasks_ran'])}")
PY
}
run_in_image deploy deployed \
  check-drift,deploy-model,engineer-features,evaluate-model,train-model,validate-data
# The same data against the deploy run's champion: the drift step compares it with the champion's
# profile and renders its report (force_retrain gets past no_new_data); then, unforced, it is skipped.
champion_registry=/tmp/image-test-deploy/registry
run_in_image model-blocked blocked \
  check-drift,engineer-features,evaluate-model,train-model,validate-data \
  --registry "$champion_registry" --set min_accuracy=0.99 --set force_retrain=true
run_in_image skipped skipped check-drift,validate-data --registry "$champion_registry"
run_in_image data-blocked blocked validate-data --set target_column=no_such_column
echo "== monitoring: a logged, labelled window of the champion through the compiled monitoring pipeline"
offline buildah run --isolation chroot --user 10001:0 "$container" -- \
  python3 /app/monitor-smoke.py "$champion_registry" /tmp/image-test-monitoring
echo "image test: all six training components and monitor-window ran in $IMAGE, and each gate stopped a run"

# ---- the serving image: built from the same pins, it serves the version the deploy run made ----
start=$(date +%s)
IMAGE="$SERVING_IMAGE" DOCKERFILE=component_images/Dockerfile.serving BUILDER=buildah BASE_IMAGE="$base" \
  EXTRA_CA_CERT="$ca" component_images/build-image.sh
echo "serving image built in $(( $(date +%s) - start )) s"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$SERVING_IMAGE"
[ "$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$SERVING_IMAGE")" = 10001 ] \
  || { echo "error: the serving image does not run as the non-root user 10001" >&2; exit 1; }
serving=$(buildah from --quiet "$SERVING_IMAGE")
trap 'buildah rm "$container" "$serving" >/dev/null 2>&1 || true' EXIT
# The deploy run's registry and local signing key, out of the component container.
root=$(buildah mount "$container")
rm -rf /tmp/image-test-serving && mkdir -p /tmp/image-test-serving
cp -r "$root/tmp/image-test-deploy/registry" /tmp/image-test-serving/registry
key=$(find "$root/home/gated" -name 'registry*key*' -type f | head -1)
[ -n "$key" ] || { echo "error: the component image's local registry key was not found" >&2; exit 1; }
cp "$key" /tmp/image-test-serving/registry.key
buildah umount "$container" >/dev/null
python3 - "$SERVING_IMAGE" /tmp/image-test-serving/registry <<'PY'
import json, pathlib, sys
image, registry = sys.argv[1], pathlib.Path(sys.argv[2])
manifest = next(registry.glob("*/versions/*/manifest.json"))
recorded = json.loads(manifest.read_text())["serving"]["image"]
sys.exit(None if recorded == image else f"the version records serving image {recorded!r}, expected {image!r}")
PY
buildah copy --quiet --chown 10001:0 "$serving" /tmp/image-test-serving /srv/test
buildah copy --quiet "$serving" component_images/serving-smoke.py tests/serving_requests.py /srv/
echo "== serving: MLServer in $SERVING_IMAGE (user 10001, no network but loopback) answers a smoke row as gated"
# A new network namespace has its loopback down: bring it up, nothing else (the server and the
# client talk over 127.0.0.1; there is still no route out).
unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
  buildah run --isolation chroot --user 10001:0 "$serving" -- python3 /srv/serving-smoke.py /srv/test

# ---- the Spark image: its entry point runs a SparkApplication's driver on the sample ----
start=$(date +%s)
IMAGE="$SPARK_TEST_IMAGE" TARGET=spark BUILDER=buildah BASE_IMAGE="$base" EXTRA_CA_CERT="$ca" component_images/build-image.sh
echo "spark image built in $(( $(date +%s) - start )) s"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$SPARK_TEST_IMAGE"
[ "$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$SPARK_TEST_IMAGE")" = 10001 ] \
  || { echo "error: the Spark image does not run as the non-root user 10001" >&2; exit 1; }
buildah inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$SPARK_TEST_IMAGE" | grep -q /opt/entrypoint.sh \
  || { echo "error: the Spark image's entry point is not /opt/entrypoint.sh" >&2; exit 1; }
spark=$(buildah from --quiet "$SPARK_TEST_IMAGE")
trap 'buildah rm "$container" "$serving" "$spark" >/dev/null 2>&1 || true' EXIT
for tool in gcc cc pip; do
  if buildah run --isolation chroot "$spark" -- sh -c "command -v $tool" >/dev/null 2>&1; then
    echo "error: $tool is present in the Spark image" >&2; exit 1
  fi
done
buildah copy --quiet --chown 10001:0 "$spark" data/german_credit.csv data/german_credit.expectations.json /tmp/spark-test/
buildah copy --quiet "$spark" component_images/spark-smoke.py /opt/gated-training/spark-smoke.py
echo "== spark: the driver of a SparkApplication in $SPARK_TEST_IMAGE (user 10001, no network but loopback)"
unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
  buildah run --isolation chroot --hostname localhost --user 10001:0 "$spark" -- python3 /opt/gated-training/spark-smoke.py /tmp/spark-test
echo "image test passed: six training components and monitor-window ran in $IMAGE, each gate stopped a run, $SERVING_IMAGE served the deployed version, and $SPARK_TEST_IMAGE ran validate-data's and train-model's drivers"
