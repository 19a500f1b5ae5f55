"""Django storage backend for MogileFS."""

__version__ = "0.1.0"
