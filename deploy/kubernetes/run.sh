#!/usr/bin/env sh
# Runs a day's plan on the cluster kubectl points at: the partitions, then,
# once all have completed, the merge. Re-running replaces both Jobs.
set -eu
cd "$(dirname "$0")"
kubectl delete job prioritize-plan-partitions prioritize-plan-merge --ignore-not-found
kubectl apply -f plan-partitions.yaml
kubectl wait --for=condition=complete --timeout=2h job/prioritize-plan-partitions
kubectl apply -f plan-merge.yaml
kubectl wait --for=condition=complete --timeout=1h job/prioritize-plan-merge
kubectl logs job/prioritize-plan-merge
