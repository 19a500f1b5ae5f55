"""Which storages share a key namespace: clusters however the trackers are spelled."""

from __future__ import annotations

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.clusters import key_spaces


def storage(trackers: list[str], domain: str = "media", prefix: str = "") -> MogileFSStorage:
    return MogileFSStorage(trackers=trackers, domain=domain, key_prefix=prefix)


def clusters_of(*storages: MogileFSStorage) -> list[int]:
    return [space.cluster for space in key_spaces((f"s{i}", s) for i, s in enumerate(storages))]


def test_trackers_sharing_an_address_are_one_cluster_in_any_order() -> None:
    a, b, c = "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
    assert len(set(clusters_of(storage([a, b]), storage([a])))) == 1
    assert len(set(clusters_of(storage([a]), storage([b, a])))) == 1
    # Two clusters numbered apart, then joined by a storage naming both.
    assert len(set(clusters_of(storage([a]), storage([c]), storage([c, a])))) == 1


def test_other_spellings_of_one_tracker_are_one_cluster() -> None:
    spellings = ["127.0.0.1:7001", "localhost:7001", " 127.0.0.1:7001 "]
    assert len(set(clusters_of(*(storage([t]) for t in spellings)))) == 1


def test_other_domains_ports_or_trackers_are_other_clusters() -> None:
    numbers = clusters_of(
        storage(["127.0.0.1:7001"]),
        storage(["127.0.0.1:7001"], domain="other"),
        storage(["127.0.0.1:7002"]),
        storage(["no-such-host.invalid:7001"]),
    )
    assert len(set(numbers)) == 4


def test_nested_prefixes_overlap_within_a_cluster_only() -> None:
    spaces = key_spaces(
        [
            ("public", storage(["127.0.0.1:7001"], prefix="site/")),
            ("private", storage(["localhost:7001"], prefix="site/private/")),
            ("sibling", storage(["127.0.0.1:7001"], prefix="site2/")),
            ("elsewhere", storage(["127.0.0.1:7002"], prefix="site/")),
        ]
    )
    public, private, sibling, elsewhere = spaces
    assert public.overlaps(private) and private.overlaps(public)
    assert not public.overlaps(sibling)  # "site2/" does not start with "site/"
    assert not public.overlaps(elsewhere)
    assert public.holds("site/private/x") and private.holds("site/private/x")
    assert not private.holds("site/x")


def test_storages_without_domain_or_trackers_reach_no_cluster() -> None:
    assert key_spaces([("bare", MogileFSStorage(domain="media"))]) == []
