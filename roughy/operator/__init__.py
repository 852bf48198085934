"""The Kubernetes operator (`roughy operator`): Render resources in, encoder Jobs out.

- `controller.Controller`: what the operator does for one Render, with the Kubernetes client,
  the store and object storage (create the Job, copy its outcome to the Render's status and the
  database, finalize a deleted Render);
- `handlers.build_registry`: the kopf handlers that call it (create/resume, Job events, a timer
  that reads progress, the delete handler that holds the finalizer);
- `service.OperatorService`: what else runs in the operator process (asset and cut
  processing, webhook delivery, pruning of old Render resources).
"""
