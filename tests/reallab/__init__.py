"""A real MogileFS 2.73 on loopback for the tests: ``python -m tests.reallab --help``.

The unmodified MogileFS sources it runs are in ``vendor/`` (see README.md).
"""

from tests.reallab.lab import DATABASES, Lab, LabError, Options

__all__ = ["DATABASES", "Lab", "LabError", "Options"]
