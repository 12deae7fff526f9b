#!/usr/bin/env bash
# Prints the helm binaries the chart is tested with, one a line: Helm 4
# (`helm`), then Helm 3 (`helm-<version>`), both built by
# tests/k8s/build-tools.sh from their Go modules (versions.env).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../k8s/versions.env
. "$here/../k8s/versions.env"
bin="$("$here/../k8s/build-tools.sh")"
echo "$bin/helm"
echo "$bin/helm-$TOLLGATE_HELM3_VERSION"
