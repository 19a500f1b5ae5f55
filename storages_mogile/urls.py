"""URL patterns serving a MogileFS storage's files at its URL prefix.

One line in a project's urls.py serves the storage named by
``MOGILEFS_SERVE_STORAGE`` (default ``"default"``) under its ``base_url``
(``MOGILEFS_MEDIA_URL``), with the ``MOGILEFS_SERVE_*`` options::

    urlpatterns += [path("", include("storages_mogile.urls"))]

For another storage, prefix or options, use
``storages_mogile.serving.urls.serve_patterns()``.
"""

from __future__ import annotations

from storages_mogile.serving.urls import serve_patterns

urlpatterns = serve_patterns()
