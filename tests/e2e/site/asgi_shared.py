"""The end-to-end site under ASGI with its sync calls on 4 shared threads (``SharedThreads``)."""

import os

from django.core.asgi import get_asgi_application

from storages_mogile.serving.asgi import SharedThreads

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.site.settings")
application = SharedThreads(get_asgi_application(), threads=4)
