from roughy.adapters.storage.local import LocalStorage

__all__ = ["LocalStorage"]
