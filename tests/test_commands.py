"""The management commands mogilefs_setup and mogilefs_status, on a MogileFS of their own."""

from __future__ import annotations

import io
import json
import time
import uuid

import pytest
from django.core.management import CommandError, call_command

from storages_mogile.client import Admin
from storages_mogile.devserver import DevCluster
from tests.conftest import Target
from tests.test_checks import use_mogilefs


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def fresh_domain(settings, mogile_target: Target) -> str:
    """A project pointing at a domain that does not exist yet (cleaned up afterwards)."""
    domain = f"setup-{uuid.uuid4().hex[:12]}"
    use_mogilefs(settings, mogile_target.trackers, domain=domain)
    settings.MOGILEFS_CLASSES = {"big": 2, "small": 1}
    yield domain
    with Admin(mogile_target.trackers) as admin:
        for cls in admin.get_domains().get(domain, {}):
            if cls != "default":
                admin.delete_class(domain, cls)
        if domain in admin.get_domains():
            admin.delete_domain(domain)


def wait_for_classes(trackers: list[str], domain: str, classes: dict[str, int]) -> None:
    """Until every tracker lists the classes: a real tracker's domain cache lags a few
    seconds behind another tracker's writes."""
    deadline = time.monotonic() + 30
    for tracker in trackers:
        while True:
            with Admin([tracker]) as admin:
                found = admin.get_domains().get(domain, {})
            if all(found.get(cls) == copies for cls, copies in classes.items()):
                break
            assert time.monotonic() < deadline, f"{tracker}: {domain} has {found}, not {classes}"
            time.sleep(0.5)


def test_setup_creates_the_domain_and_classes_once(fresh_domain, mogile_target) -> None:
    planned = run("mogilefs_setup", "--dry-run")
    assert f"domain {fresh_domain}: would create" in planned
    assert f"class {fresh_domain}/big (2 copies): would create" in planned
    with Admin(mogile_target.trackers) as admin:
        assert fresh_domain not in admin.get_domains()  # a dry run changes nothing
    created = run("mogilefs_setup")
    assert f"domain {fresh_domain}: created" in created
    assert f"class {fresh_domain}/small (1 copies): created" in created
    wait_for_classes(mogile_target.trackers, fresh_domain, {"big": 2, "small": 1})
    again = run("mogilefs_setup")
    assert "created" not in again and again.count(": exists") == 3


def test_setup_changes_copies_only_when_asked(settings, fresh_domain, mogile_target) -> None:
    run("mogilefs_setup")
    wait_for_classes(mogile_target.trackers, fresh_domain, {"big": 2})
    settings.MOGILEFS_CLASSES = {"big": 1, "small": 1}
    with pytest.raises(CommandError, match="--update"):
        run("mogilefs_setup")
    assert run("mogilefs_setup", "--update-copies").count("changed from 2 copies") == 1
    wait_for_classes(mogile_target.trackers, fresh_domain, {"big": 1})


def test_setup_sets_hash_types_and_changes_them_only_when_asked(
    settings, fresh_domain, mogile_target
) -> None:
    settings.MOGILEFS_CLASSES = {"big": {"copies": 2, "hashtype": "MD5"}, "small": 1}
    created = run("mogilefs_setup")
    assert f"class {fresh_domain}/big (2 copies, MD5): created" in created
    wait_for_hash_type(mogile_target.trackers, fresh_domain, "big", "MD5")
    assert run("mogilefs_setup").count(": exists") == 3
    settings.MOGILEFS_CLASSES = {"big": {"copies": 2, "hashtype": "NONE"}, "small": 1}
    with pytest.raises(CommandError, match="--update"):
        run("mogilefs_setup")
    changed = run("mogilefs_setup", "--update")
    assert f"class {fresh_domain}/big (2 copies): changed from 2 copies, MD5" in changed
    wait_for_hash_type(mogile_target.trackers, fresh_domain, "big", "NONE")


def wait_for_hash_type(trackers: list[str], domain: str, cls: str, hashtype: str) -> None:
    """Until every tracker gives the class that hash type (a real tracker's cache lags)."""
    deadline = time.monotonic() + 30
    for tracker in trackers:
        while True:
            with Admin([tracker]) as admin:
                found = admin.get_classes(domain).get(cls)
            if found is not None and found.hashtype == hashtype:
                break
            assert time.monotonic() < deadline, f"{tracker}: {domain}/{cls} is {found}"
            time.sleep(0.5)


def test_setup_refuses_classes_used_but_not_declared(settings, mogile_target) -> None:
    use_mogilefs(settings, mogile_target.trackers, mogile_class="undeclared")
    settings.MOGILEFS_CLASSES = {}
    with pytest.raises(CommandError, match="'undeclared'.*MOGILEFS_CLASSES"):
        run("mogilefs_setup")


def test_status_shows_trackers_classes_and_devices(settings, mogile_target: Target) -> None:
    use_mogilefs(settings, mogile_target.trackers)
    table = run("mogilefs_status")
    assert "Domain testdomain" in table
    for tracker in mogile_target.trackers:
        assert tracker in table and "up" in table
    assert "avatar" in table and "MiB free" in table
    (report,) = json.loads(run("mogilefs_status", "--json"))
    assert report["classes"]["avatar"] == 2 and report["problems"] == []
    assert all(device["mb_free"] for host in report["hosts"] for device in host["devices"])


def test_status_with_a_node_stopped_and_a_tracker_down(settings, dev_cluster: DevCluster) -> None:
    down = dev_cluster.add_tracker()
    down.stop()
    use_mogilefs(settings, [dev_cluster.trackers[0], down.address])
    dev_cluster.nodes[1].stop()
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("mogilefs_status", "--json", stdout=out)
    (report,) = json.loads(out.getvalue())
    assert [tracker["up"] for tracker in report["trackers"]] == [True, False]
    states = {d["devid"]: d["observed_state"] for h in report["hosts"] for d in h["devices"]}
    assert states == {1: "writeable", 2: "unreachable"}
    assert "dev2 on node2 unreachable" in str(caught.value)
    assert down.address in str(caught.value)
