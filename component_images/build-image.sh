#!/usr/bin/env bash
# Build the component image with whichever builder works here: docker, podman or buildah.
#   IMAGE=name:tag          the image to build (required)
#   BASE_IMAGE=...          a slim Python 3.11 base (default: the Dockerfile's python:3.11-slim-bookworm)
#   EXTRA_CA_CERT=path.crt  an extra CA for pip behind a TLS-intercepting proxy (build stage only)
#   BUILDER=docker|podman|buildah  to choose instead of detecting
#   PUSH=1                  push IMAGE to its registry after the build (log in with the builder first)
#   DOCKERFILE=...          component_images/Dockerfile (default) or component_images/Dockerfile.serving
#   SERVING_IMAGE=name:tag  the serving image the component image names (recorded in every version's manifest)
#   TARGET=spark            build the Dockerfile's Spark stage (make spark-image) instead of its last
#   SPARK_JARS="a.jar ..."  jars for the Spark image's $SPARK_HOME/jars (Google's GCS connector for gs://)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${IMAGE:?set IMAGE=name:tag}"

detect_builder() {
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; return; fi
  if command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1; then echo podman; return; fi
  if command -v buildah >/dev/null 2>&1; then echo buildah; return; fi
  echo "error: no working image builder: start a Docker engine, or install podman or buildah" >&2
  return 1
}
BUILDER="${BUILDER:-$(detect_builder)}"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain -- src data requirements pyproject.toml component_images 2>/dev/null)" ]; then
  revision="${revision}-dirty"
fi
source_url=$(git config --get remote.origin.url 2>/dev/null || echo "https://github.com/kfp-gated-training/kfp-gated-training")

ca_copy=component_images/extra-ca/extra-ca.crt
rm -f "$ca_copy" component_images/spark-jars/*.jar
trap 'rm -f "$ca_copy" component_images/spark-jars/*.jar' EXIT
for jar in ${SPARK_JARS:-}; do
  case "$jar" in *.jar) ;; *) echo "error: SPARK_JARS: $jar is not a .jar file" >&2; exit 1 ;; esac
  [ -r "$jar" ] || { echo "error: SPARK_JARS: $jar is not a readable file" >&2; exit 1; }
  cp "$jar" component_images/spark-jars/
done
if [ -n "${EXTRA_CA_CERT:-}" ]; then
  [ -r "$EXTRA_CA_CERT" ] || { echo "error: EXTRA_CA_CERT=$EXTRA_CA_CERT is not a readable file" >&2; exit 1; }
  cp "$EXTRA_CA_CERT" "$ca_copy"
fi

args=(-f "${DOCKERFILE:-component_images/Dockerfile}" -t "$IMAGE"
      --build-arg "VERSION=$version" --build-arg "REVISION=$revision"
      --build-arg "SOURCE=$source_url" --build-arg "IMAGE_NAME=$IMAGE"
      --build-arg "SERVING_IMAGE_NAME=${SERVING_IMAGE:-}")
[ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
[ -n "${TARGET:-}" ] && args+=(--target "$TARGET")

echo "building $IMAGE with $BUILDER (version $version, revision $revision)"
case "$BUILDER" in
  docker) docker build "${args[@]}" . ;;
  podman) podman build "${args[@]}" . ;;
  # chroot isolation works without a container runtime or user namespaces (CI sandboxes).
  buildah) buildah bud --isolation "${BUILDAH_ISOLATION:-chroot}" --layers "${args[@]}" . ;;
  *) echo "error: unknown BUILDER=$BUILDER (docker, podman or buildah)" >&2; exit 1 ;;
esac

if [ "${PUSH:-}" = 1 ]; then
  echo "pushing $IMAGE"
  case "$BUILDER" in
    docker) docker push "$IMAGE" ;;
    podman) podman push "$IMAGE" ;;
    buildah) buildah push "$IMAGE" ;;
  esac
fi
