"""ASGI entry point of the end-to-end site (``uvicorn tests.e2e.site.asgi:application``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.site.settings")
application = get_asgi_application()
