from roughy.adapters.executor.local_tasks import LocalTasks
from roughy.adapters.executor.subprocess import LocalExecutor

__all__ = ["LocalExecutor", "LocalTasks"]
