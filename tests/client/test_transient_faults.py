"""Faults that a second try gets past: the application never sees them.

mogilefsd answers ``ERR db Database error`` when a query fails on its
database and ``ERR failure Operation failed`` when a command dies (both seen
under load); a storage node that goes away between the PUT and
``create_close`` makes the tracker refuse the close with
``size_verify_error ... (cantreach)``. Nothing was stored either way, and
another tracker or destination would succeed. The dev tracker answers with
those errors on demand (``Tracker.fail_reply``); a node is stopped right
after the PUT.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from storages_mogile.client import (
    Client,
    CloseOutcomeUnknownError,
    TrackerError,
    UnrewindableSourceError,
)
from storages_mogile.client.core import MAX_TRANSIENT_ERRORS
from storages_mogile.devserver import DevCluster

from .test_transfers import NonSeekable


@pytest.mark.parametrize("code", ["db", "failure"])
@pytest.mark.parametrize("command", ["create_open", "get_paths", "file_info", "list_keys"])
def test_a_transient_error_is_tried_again_on_the_other_tracker(
    dev_cluster: DevCluster, command: str, code: str
) -> None:
    trackers = [dev_cluster.tracker_servers[0].tracker, dev_cluster.add_tracker().tracker]
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("t/key", b"stored")
    for tracker in trackers:
        tracker.fail_reply(command, code)
    client.store_content("t/key", b"stored again")
    assert client.get_paths("t/key")
    assert client.file_info("t/key").length == len(b"stored again")
    assert client.list_keys("t/") == ["t/key"]
    # Both failed once: the second try went to the other tracker, the third succeeded.
    assert [tracker.pending_faults() for tracker in trackers] == [0, 0]
    assert client.get_file_data("t/key") == b"stored again"


def test_a_lone_tracker_is_tried_again_after_a_pause(dev_cluster: DevCluster) -> None:
    client = Client("testdomain", dev_cluster.trackers)
    tracker = dev_cluster.tracker_servers[0].tracker
    tracker.fail_reply("create_open", "db", count=MAX_TRANSIENT_ERRORS)
    client.store_content("t/key", b"stored")
    assert client.get_file_data("t/key") == b"stored"


def test_a_lasting_failure_reaches_the_caller_after_a_bounded_number_of_tries(
    dev_cluster: DevCluster,
) -> None:
    client = Client("testdomain", dev_cluster.trackers)
    tracker = dev_cluster.tracker_servers[0].tracker
    tracker.fail_reply("file_info", "db", count=100)
    with pytest.raises(TrackerError) as caught:
        client.file_info("t/key")
    assert caught.value.code == "db"
    assert "Database error" in str(caught.value)
    assert tracker.pending_faults() == 100 - (MAX_TRANSIENT_ERRORS + 1)


@pytest.mark.parametrize("act", [False, True], ids=["failed-before-acting", "failed-after-acting"])
def test_create_close_failing_transiently_is_settled(dev_cluster: DevCluster, act: bool) -> None:
    """A close that failed after its work took effect is not done twice; one
    that failed before is sent again."""
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("t/key", b"previous")
    dev_cluster.tracker_servers[0].tracker.fail_reply("create_close", "failure", act=act)
    client.store_content("t/key", b"new content")
    assert client.get_file_data("t/key") == b"new content"


def test_delete_failing_after_acting_is_done(dev_cluster: DevCluster) -> None:
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("t/key", b"doomed")
    dev_cluster.tracker_servers[0].tracker.fail_reply("delete", "failure", act=True)
    client.delete("t/key")  # sent again, answered unknown_key: done already
    assert client.list_keys("t/") == []


def lose_the_node_after_the_first_put(client: Client, dev_cluster: DevCluster) -> list[str]:
    """Stop the node of the first PUT right after it: the tracker cannot check
    that upload at create_close. Returns the URLs PUT to."""
    put, put_file = client.nodes.put, client.nodes.put_file
    urls: list[str] = []

    def after(send: Callable[..., object]) -> Callable[..., object]:
        def sent(url: str, *args: object, **kwargs: object) -> object:
            result = send(url, *args, **kwargs)
            urls.append(url)
            if len(urls) == 1:
                (node,) = (node for node in dev_cluster.nodes if url.startswith(node.url + "/"))
                node.stop()
            return result

        return sent

    client.nodes.put = after(put)  # type: ignore[method-assign]
    client.nodes.put_file = after(put_file)  # type: ignore[method-assign]
    return urls


def test_a_destination_lost_before_create_close_is_stored_again_elsewhere(
    dev_cluster: DevCluster, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("t/key", b"previous", "thumb")
    urls = lose_the_node_after_the_first_put(client, dev_cluster)
    with caplog.at_level(logging.WARNING, logger="storages_mogile.client"):
        assert client.store_content("t/key", b"new content", "thumb") == len(b"new content")
    assert "size_verify_error" in caplog.text and "cantreach" in caplog.text
    lost, stored = urls[0], urls[-1]
    assert lost.split("/dev")[0] != stored.split("/dev")[0]  # on the other node
    assert client.get_paths("t/key", noverify=True) == [stored]
    assert client.get_file_data("t/key") == b"new content"


def test_a_non_seekable_source_cannot_start_over(dev_cluster: DevCluster) -> None:
    """The bytes read are gone: a clear error that says to store again, not a
    store of what is left of the stream."""
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("t/key", b"previous", "thumb")
    lose_the_node_after_the_first_put(client, dev_cluster)
    with pytest.raises(UnrewindableSourceError) as caught:
        client.store_file("t/key", NonSeekable(b"streamed once"), "thumb")
    assert caught.value.key == "t/key"
    assert "size_verify_error" in str(caught.value)
    assert "nothing was stored" in str(caught.value)
    for node in dev_cluster.nodes:
        node.start()
    assert client.get_file_data("t/key") == b"previous"


def test_a_close_that_died_having_taken_the_upload_starts_over(dev_cluster: DevCluster) -> None:
    """mogilefsd's create_close takes the upload's temp file first, then may
    die (``ERR failure``): sent again it is refused with ``no_temp_file``.
    No attempt is still running, so the store starts over from create_open
    (a second PUT), once, and the key holds the new file; a non-seekable
    source cannot start over and says so, the key keeping its file."""
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("t/key", b"previous")
    tracker = dev_cluster.tracker_servers[0].tracker
    puts: list[str] = []
    put = client.nodes.put

    def counted(url: str, *args: object, **kwargs: object) -> object:
        puts.append(url)
        return put(url, *args, **kwargs)  # type: ignore[arg-type]

    client.nodes.put = counted  # type: ignore[method-assign]
    tracker.fail_reply("create_close", "failure")
    tracker.fail_reply("create_close", "no_temp_file")
    assert client.store_content("t/key", b"new content") == len(b"new content")
    assert client.get_file_data("t/key") == b"new content"
    assert len(puts) == 2 and tracker.pending_faults() == 0
    tracker.fail_reply("create_close", "failure")
    tracker.fail_reply("create_close", "no_temp_file")
    with pytest.raises(UnrewindableSourceError):
        client.store_file("t/key", NonSeekable(b"once only"))
    assert client.get_file_data("t/key") == b"new content"


def test_a_close_refused_after_a_lost_reply_is_not_started_over(dev_cluster: DevCluster) -> None:
    """The close died, and the one sent again lost its reply: that attempt
    may still be running and commit, so a third refused with
    ``no_temp_file`` is not taken for the dead one's: the outcome is
    reported open (no second store to race the late commit)."""
    client = Client("testdomain", dev_cluster.trackers, timeout=1)
    client.store_content("t/key", b"previous")
    tracker = dev_cluster.tracker_servers[0].tracker
    tracker.fail_reply("create_close", "failure")
    tracker.drop_reply("create_close", act=False)
    tracker.fail_reply("create_close", "no_temp_file")
    with pytest.raises(CloseOutcomeUnknownError, match="may still do so"):
        client.store_content("t/key", b"new content")
    assert client.get_file_data("t/key") == b"previous"


def test_a_store_whose_close_died_does_not_say_the_key_kept_its_file(
    dev_cluster: DevCluster,
) -> None:
    """mogilefsd's create_close deletes the key's old file before it records
    the new one: one that died (``ERR failure``; on SQLite, two overwrites of
    one key at once) may have left the key holding nothing, and a store
    that cannot start over says so, never that the key kept its content.
    (The dev tracker replaces a file in one transaction: here it does keep it.)"""
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("t/key", b"previous")
    tracker = dev_cluster.tracker_servers[0].tracker
    tracker.fail_reply("create_close", "failure")
    tracker.fail_reply("create_close", "no_temp_file")
    with pytest.raises(UnrewindableSourceError) as caught:
        client.store_file("t/key", NonSeekable(b"once only"))
    assert "may have lost its previous content" in str(caught.value)
    assert "keeps its previous content" not in str(caught.value)
    tracker.fail_reply("create_close", "failure", count=100)
    with pytest.raises(TrackerError) as lasting:
        client.store_content("t/key", b"new content")
    tracker.cancel_faults()
    assert lasting.value.code == "failure" and lasting.value.key == "t/key"
    assert "may have lost its previous content" in str(lasting.value)
