"""WSGI entry point of the end-to-end site (``gunicorn tests.e2e.site.wsgi:application``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.site.settings")
application = get_wsgi_application()
