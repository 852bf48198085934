from roughy.adapters.executor.subprocess import SubprocessExecutor

__all__ = ["SubprocessExecutor"]
