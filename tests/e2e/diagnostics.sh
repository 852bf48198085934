#!/usr/bin/env bash
# What to look at when the e2e suite fails: every object, events, and the logs of the release.
set -uo pipefail
NS=roughy-e2e  # tests/e2e/values.yaml and conftest.py name these too
for ns in "$NS" "${NS}-deps"; do
  echo "::group::objects in $ns"
  kubectl -n "$ns" get all,renders,configmaps,secrets,roles,rolebindings,serviceaccounts -o wide
  echo "::endgroup::"
  echo "::group::events in $ns"
  kubectl -n "$ns" get events --sort-by=.lastTimestamp
  echo "::endgroup::"
done
echo "::group::renders"
kubectl -n "$NS" get renders -o yaml
echo "::endgroup::"
for pod in $(kubectl -n "$NS" get pods -o name); do
  echo "::group::logs of $pod"
  kubectl -n "$NS" logs "$pod" --all-containers --tail=300
  kubectl -n "$NS" logs "$pod" --all-containers --previous --tail=100 2>/dev/null
  echo "::endgroup::"
done
