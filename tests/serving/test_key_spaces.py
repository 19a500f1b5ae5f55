"""Storages whose key prefixes nest: a more private storage's files are served by its routes only.

STORAGES[ALIAS] (key prefix "", unsigned, no access hook) is served at
/mogilefs/ (stream), /perlbal/, /nginx/, /download/ and /seed/. In
``nested``, two storages live inside its key space on the same domain:
"signed" (key prefix "signed/", signed URLs, its trackers spelled
otherwise) at /signed/, and "private" (key prefix "private/") at /private/
with the access hook of docs/serving.md.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.serving.routes import key_skeleton, may_start_with

from .conftest import ALIAS, mogile_storages

pytestmark = pytest.mark.usefixtures("serving_settings")

OUTER_ROUTES = ["mogilefs", "perlbal", "nginx", "download", "seed"]


def nested_storages(trackers: list[str], **signed_options: object) -> dict[str, dict]:
    setting = mogile_storages(trackers)
    other_spelling = [tracker.replace("127.0.0.1", "localhost") for tracker in trackers]
    setting["signed"] = mogile_storages(
        other_spelling,
        key_prefix="signed/",
        base_url="/signed/",
        signed_urls=True,
        **signed_options,
    )[ALIAS]
    setting["private"] = mogile_storages(trackers, key_prefix="private/", base_url="/private/")[
        ALIAS
    ]
    return setting


@pytest.fixture
def nested(serving_settings, relay) -> None:  # type: ignore[no-untyped-def]
    serving_settings.STORAGES = nested_storages([relay.address])


def saved(storage: MogileFSStorage, data: bytes = b"private bytes") -> str:
    return storage.save(f"invoices/{uuid.uuid4().hex}.pdf", ContentFile(data))


def assert_refused(client, path: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 404, path
    assert "X-REPROXY-URL" not in response and "X-Accel-Redirect" not in response
    assert b"private bytes" not in response.content


@pytest.mark.usefixtures("nested")
@pytest.mark.parametrize("route", OUTER_ROUTES)
def test_a_signed_storages_files_need_its_signature_at_every_route(client, route) -> None:
    signed = storages["signed"]
    name = saved(signed)
    assert client.get(signed.url(name)).status_code == 200  # its own route
    for spelling in (f"signed/{name}", f"./signed/{name}", f"signed//{name}", f"signed/./{name}"):
        assert_refused(client, f"/{route}/{spelling}")
    # Not with a signature the outer storage makes for that name either.
    outer_link = storages[ALIAS].url(f"signed/{name}", expire=60)
    assert_refused(client, outer_link.replace("/mogilefs/", f"/{route}/", 1))


@pytest.mark.usefixtures("nested")
@pytest.mark.parametrize("route", OUTER_ROUTES)
def test_a_storage_served_with_an_access_hook_needs_it_at_every_route(client, route) -> None:
    from tests.serving.doc_examples import signed_url

    name = saved(storages["private"])
    assert client.get(signed_url(name)).status_code == 200  # its own route, with a token
    assert_refused(client, f"/{route}/private/{name}")
    assert_refused(client, f"/{route}/private/{name}?{signed_url(name).partition('?')[2]}")


# Names a tracker on MariaDB (utf8mb4_general_ci; the Unicode collations also skip
# controls and format characters) takes for signed/... or private/...: the files
# of those storages there. Here (byte for byte) they are the outer storage's own.
COLLATING_NAMES = [
    "SIGNED/a.txt",
    "Private/a.txt",
    "s\u00edgned/a.txt",  # an accent
    "signe\u0301d/a.txt",  # a combining accent
    "\u00dfigned/a.txt",  # sharp s
    "\u017figned/a.txt",  # long s
    "\uff53igned/a.txt",  # fullwidth s
    "pr\u0131vate/a.txt",  # dotless i
    "sig\u00adned/a.txt",  # a soft hyphen
    "sig\tned/a.txt",  # a control character
]


@pytest.mark.usefixtures("nested")
@pytest.mark.parametrize("route", ["mogilefs", "perlbal", "nginx"])
def test_names_a_collation_may_take_for_private_keys_are_refused(client, route) -> None:
    outer = storages[ALIAS]
    for name in COLLATING_NAMES:
        saved_name = outer.save(name, ContentFile(b"private bytes"))
        assert_refused(client, f"/{route}/{quote(saved_name)}")


def test_prefixes_a_collation_may_take_for_nested_ones_nest(client, settings, relay) -> None:
    """Outer prefix "Site/", signed "site/signed/": one key space on MariaDB."""
    setting = nested_storages([relay.address])
    setting[ALIAS]["OPTIONS"]["key_prefix"] = "Site/"
    setting["signed"]["OPTIONS"]["key_prefix"] = "site/signed/"
    settings.STORAGES = setting
    name = storages[ALIAS].save("signed/a.txt", ContentFile(b"private bytes"))
    assert_refused(client, f"/mogilefs/{name}")
    assert (
        client.get(f"/mogilefs/{storages[ALIAS].save('a.txt', ContentFile(b'x'))}").status_code
        == 200
    )


@pytest.mark.usefixtures("nested")
def test_the_outer_storage_still_serves_its_own_files(client) -> None:
    outer = storages[ALIAS]
    names = ["signedx/a.txt", "signed", "sign/a.txt", "private.txt", "invoices/signed/a.txt"]
    names += ["s\u00edgnet/a.txt", "\u00e9l\u00e8ve/a.txt", "sig/ned/a.txt"]
    for name in names:
        saved_name = outer.save(name, ContentFile(b"public"))
        assert client.get(f"/perlbal/{quote(saved_name)}").status_code == 200, name


def test_a_signed_storage_nested_in_a_signed_one_needs_its_own_signature(
    client, settings, relay
) -> None:
    settings.STORAGES = nested_storages([relay.address])
    settings.STORAGES[ALIAS]["OPTIONS"]["signed_urls"] = True
    outer = storages[ALIAS]
    name = saved(storages["signed"])
    assert_refused(client, outer.url(f"signed/{name}"))
    own = saved(outer, b"the outer storage's")
    assert client.get(outer.url(own)).status_code == 200


def test_a_storage_of_another_domain_takes_nothing_from_the_outer_one(
    client, settings, relay
) -> None:
    settings.STORAGES = nested_storages([relay.address], domain="otherdomain")
    name = storages[ALIAS].save("signed/shared.txt", ContentFile(b"the outer storage's"))
    assert client.get(f"/mogilefs/{name}").status_code == 200


def test_the_refusal_follows_settings_changes(client, settings, relay, stored) -> None:
    name = storages[ALIAS].save(f"signed/{uuid.uuid4().hex}.txt", ContentFile(b"public"))
    assert client.get(f"/mogilefs/{name}").status_code == 200
    settings.STORAGES = nested_storages([relay.address])
    assert_refused(client, f"/mogilefs/{name}")
    settings.STORAGES = nested_storages([relay.address], domain="otherdomain")
    assert client.get(f"/mogilefs/{name}").status_code == 200


def test_a_route_serving_the_hooked_storage_without_the_hook_refuses_it(
    client, settings, relay
) -> None:
    """The operator also serves "private" itself without its hook (the settings' storage)."""
    settings.STORAGES = nested_storages([relay.address])
    settings.MOGILEFS_SERVE_STORAGE = "private"
    name = saved(storages["private"])
    assert_refused(client, f"/mogilefs/{name}")
    assert_refused(client, f"/perlbal/{name}")


@pytest.mark.parametrize(
    ("key", "prefix"),
    [  # what MariaDB's utf8mb4_general_ci calls equal (shared/mogilefs-lab/README.md)
        ("SIGNED/x", "signed/"),
        ("\u00e9.txt", "e.txt"),
        ("\u00dfecret/x", "secret/"),  # ß = s
        ("\u00dfecret/x", "ssecret/"),  # ß = ss in the Unicode collations
        ("\U0001f600/x", "\U0001f512/"),  # every character outside the BMP
        ("\ufffd/x", "\U0001f512/"),
        ("priv  ", "priv"),  # trailing spaces
    ],
)
def test_skeletons_meet_where_a_collation_calls_keys_equal(key, prefix) -> None:
    assert may_start_with(key_skeleton(key), key_skeleton(prefix))


@pytest.mark.parametrize(
    ("key", "prefix"),
    [("signet/x", "signed/"), ("sign", "signed/"), ("xsigned/", "signed/"), ("sig/ned", "signed/")],
)
def test_skeletons_part_where_no_collation_meets(key, prefix) -> None:
    assert not may_start_with(key_skeleton(key), key_skeleton(prefix))
