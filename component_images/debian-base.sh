#!/usr/bin/env bash
# Make a slim Debian bookworm + Python 3.11 base image with debootstrap, for machines that
# cannot pull registry images. Prints the image name. Reuses it when it already exists.
set -euo pipefail
BASE_NAME="${BASE_NAME:-localhost/gated-training-base:bookworm-py311}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if buildah inspect --type image "$BASE_NAME" >/dev/null 2>&1; then
  echo "$BASE_NAME"
  exit 0
fi
rootfs=$(mktemp -d /tmp/gated-base-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm into $rootfs (from $MIRROR)" >&2
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$MIRROR" >&2
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -cf "$rootfs.tar" .
container=$(buildah from scratch)
buildah add "$container" "$rootfs.tar" / >/dev/null
rm -f "$rootfs.tar"
buildah config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin --env LANG=C.UTF-8 \
  --cmd /usr/bin/python3 "$container"
buildah commit --quiet "$container" "$BASE_NAME" >/dev/null
buildah rm "$container" >/dev/null
echo "$BASE_NAME"
