"""The Kubernetes runtime's pure pieces: the `Render` resource's models and CRD, and the Job builder.

Nothing here talks to a cluster or imports kopf or the Kubernetes client: `crd` turns pydantic
models into a CustomResourceDefinition (`python -m roughy.kube.crd > crds/render.yaml`), `jobs`
turns a Render into a batch/v1 Job manifest. The operator and the kube executor apply them.
"""
