#!/usr/bin/env bash
# Deploy what the e2e suite expects into the current kube context (a kind cluster whose nodes
# already have the roughy:e2e and roughy-encoder:e2e images, see .github/workflows/e2e.yml):
# PostgreSQL and S3 in one namespace, the chart in another that enforces the "restricted" Pod
# Security Standard, so that every pod of the release, encoder Jobs included, is checked by
# the API server itself. Safe to run again (upgrade --install).
set -euo pipefail
cd "$(dirname "$0")/../.."

NS=roughy-e2e  # tests/e2e/values.yaml and conftest.py name these too
DEPS="${NS}-deps"
RELEASE=roughy

kubectl create namespace "$DEPS" --dry-run=client -o yaml | kubectl apply -f -
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl label --overwrite namespace "$NS" \
  pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted

kubectl -n "$DEPS" apply -f tests/e2e/manifests/
kubectl -n "$DEPS" rollout status deployment/postgres --timeout=300s
kubectl -n "$DEPS" rollout status deployment/moto --timeout=300s
kubectl -n "$DEPS" wait --for=condition=complete job/create-bucket --timeout=300s

helm upgrade --install "$RELEASE" charts/roughy --namespace "$NS" \
  -f tests/e2e/values.yaml --wait --timeout 10m
kubectl -n "$NS" get all
