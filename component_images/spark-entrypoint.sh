#!/bin/bash
# The Spark image's entry point. Spark on Kubernetes (spark-submit, as the Spark Operator runs it) starts the
# driver pod with `driver <spark-submit arguments>` and each executor pod with `executor`, passing the rest in
# the environment (SPARK_DRIVER_URL, SPARK_EXECUTOR_ID, SPARK_JAVA_OPT_0.., ...): the contract of Spark's own
# Kubernetes images, kept here for an image whose Spark is pyspark's. Anything else runs as a command.
set -eo pipefail

classpath="${SPARK_HOME}/jars/*"
if [ -n "${SPARK_CLASSPATH:-}" ]; then classpath="${SPARK_CLASSPATH}:${classpath}"; fi
if [ -n "${HADOOP_CONF_DIR:-}" ]; then classpath="${HADOOP_CONF_DIR}:${classpath}"; fi
if [ -n "${SPARK_CONF_DIR:-}" ]; then classpath="${SPARK_CONF_DIR}:${classpath}"; fi

role="${1:-}"
case "$role" in
  driver)
    shift
    : "${SPARK_DRIVER_BIND_ADDRESS:?the driver pod sets SPARK_DRIVER_BIND_ADDRESS (its pod IP)}"
    # Inside its pod the driver runs in client mode: the cluster-mode submission already happened.
    exec "${SPARK_HOME}/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}" \
      --deploy-mode client "$@"
    ;;
  executor)
    shift
    for variable in SPARK_DRIVER_URL SPARK_EXECUTOR_ID SPARK_EXECUTOR_CORES SPARK_EXECUTOR_MEMORY \
        SPARK_APPLICATION_ID SPARK_EXECUTOR_POD_IP SPARK_EXECUTOR_POD_NAME; do
      [ -n "${!variable:-}" ] || { echo "spark-entrypoint: executor pod without $variable" >&2; exit 64; }
    done
    # The JVM options Spark passes one per variable, in their numbered order.
    java_options=()
    while IFS= read -r option; do java_options+=("$option"); done < <(
      env | grep '^SPARK_JAVA_OPT_[0-9]*=' | sort -t_ -k4 -n | sed 's/^SPARK_JAVA_OPT_[0-9]*=//' || true)
    # A cluster that assigns a random UID (OpenShift) has no passwd entry for it: the JVM's home is HOME.
    exec "${JAVA_HOME}/bin/java" "-Duser.home=${HOME:-/tmp}" "${java_options[@]}" \
      -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
      -cp "${classpath}" org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "${SPARK_DRIVER_URL}" --executor-id "${SPARK_EXECUTOR_ID}" \
      --cores "${SPARK_EXECUTOR_CORES}" --app-id "${SPARK_APPLICATION_ID}" \
      --hostname "${SPARK_EXECUTOR_POD_IP}" --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
      --podName "${SPARK_EXECUTOR_POD_NAME}"
    ;;
  "")
    exec "${SPARK_HOME}/bin/spark-submit" --version
    ;;
  *)
    exec "$@"
    ;;
esac
