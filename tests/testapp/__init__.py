"""The suite's own Django app (listed in ``tests/settings.py``)."""
