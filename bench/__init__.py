"""roughy's benchmark harness (see bench/README.md). Run it as `python bench/run.py`."""
