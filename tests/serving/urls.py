"""URLs of the serving tests: the settings' mode at /mogilefs/, fixed modes elsewhere."""

from django.urls import re_path

from storages_mogile.serving.urls import serve_patterns
from storages_mogile.views import serve_mogilefs_file

urlpatterns = [
    *serve_patterns(prefix="/mogilefs/"),
    *serve_patterns(prefix="/perlbal/", mode="perlbal"),
    *serve_patterns(prefix="/nginx/", mode="nginx", nginx_location="/internal/mogilefs/"),
    *serve_patterns(prefix="/download/", attachment=True, headers={"Cache-Control": "private"}),
    # Storages whose keys nest in the others' when a test configures them.
    *serve_patterns(prefix="/signed/", storage="signed"),
    *serve_patterns(
        prefix="/private/", storage="private", access="tests.serving.doc_examples.can_read"
    ),
    # The seed's pattern, as projects written for it have it.
    re_path(r"^seed/(?P<key>.*)", serve_mogilefs_file),
]
