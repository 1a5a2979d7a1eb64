#!/usr/bin/env bash
# Regenerate tests/conformance/descriptors/kfp-<backend>.pb: the PipelineSpec and Kubernetes-platform
# protos each supported KFP backend release is built with, as protobuf FileDescriptorSets.
#
# A backend's protos are the ones its go.mod resolves: 2.2.0 and 2.4.x pin commits of the api and
# kubernetes_platform modules; from 2.5.0 go.mod replaces both with the tag's own folders.
#
# usage: build_descriptors.sh /path/to/kubeflow-pipelines-clone   (needs python -m grpc_tools.protoc
#        and googleapis-common-protos for google/rpc/status.proto)
set -euo pipefail
repo=${1:?path to a kubeflow/pipelines clone with its tags}
python=${PYTHON:-python3}
out=$(cd "$(dirname "$0")" && pwd)/descriptors
grpc_include=$($python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
common_include=$($python -c 'import google.rpc.status_pb2 as m, os; print(os.path.dirname(os.path.dirname(os.path.dirname(m.__file__))))')
# backend  api revision   kubernetes_platform revision
while read -r backend api k8s; do
  work=$(mktemp -d)
  git -C "$repo" show "$api:api/v2alpha1/pipeline_spec.proto" > "$work/pipeline_spec.proto"
  git -C "$repo" show "$k8s:kubernetes_platform/proto/kubernetes_executor_config.proto" > "$work/kubernetes_executor_config.proto"
  $python -m grpc_tools.protoc --include_imports -I "$work" -I "$grpc_include" -I "$common_include" \
    --descriptor_set_out="$out/kfp-$backend.pb" "$work/pipeline_spec.proto" "$work/kubernetes_executor_config.proto"
  echo "kfp-$backend.pb  api@$api  kubernetes_platform@$k8s"
  rm -rf "$work"
done <<'TABLE'
2.2.0  58ce09e07d03  8b2a099e8c9f
2.4.0  873e9dedd766  d911c8b73b49
2.4.1  873e9dedd766  d911c8b73b49
2.5.0  2.5.0   2.5.0
2.14.0 2.14.0  2.14.0
2.17.0 2.17.0  2.17.0
TABLE
