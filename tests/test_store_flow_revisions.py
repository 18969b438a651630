"""Flow revisions in the store: listed, deleted one by one, and a deleted flow's last one, on
every implementation (the fixtures of tests/test_store.py).

Kestra's AbstractJdbcFlowRepository is the model: `delete` marks the latest revision deleted,
`findRevisions` leaves deleted revisions out unless asked, `deleteRevisions` marks the ones
named deleted (the latest among them deletes the flow), and a revision stays readable by
number for the executions that ran it.
"""

from __future__ import annotations

from daemon.store import Store
from tests.test_store import backend, clock, make_store, store

__all__ = ["backend", "clock", "make_store", "store"]


async def test_revisions_are_listed_oldest_first_with_their_source(store: Store) -> None:
    for source in ("a", "b", "c"):
        await store.save_flow("ns", "f", source)
    await store.save_flow("ns", "other", "x")
    assert await store.revisions.list("ns", "f") == [(1, "a"), (2, "b"), (3, "c")]
    assert await store.revisions.list("ns", "nope") == []


async def test_deleted_revisions_leave_the_list_but_stay_readable(store: Store) -> None:
    """AbstractJdbcFlowRepository.deleteRevisions: older revisions are marked deleted."""
    for source in ("a", "b", "c"):
        await store.save_flow("ns", "f", source)
    await store.revisions.delete("ns", "f", [1, 2, 2, 9])
    assert await store.revisions.list("ns", "f") == [(3, "c")]
    assert await store.revisions.list("ns", "f", deleted=True) == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
    ]
    assert await store.get_flow("ns", "f", 1) == (1, "a")
    assert await store.get_flow("ns", "f") == (3, "c")
    assert [f["revision"] for f in await store.list_flows()] == [3]


async def test_deleting_the_latest_revision_deletes_the_flow(store: Store) -> None:
    await store.save_flow("ns", "f", "a")
    await store.save_flow("ns", "f", "b")
    await store.revisions.delete("ns", "f", [2])
    assert await store.get_flow("ns", "f") is None
    assert await store.list_flows() == []
    assert await store.revisions.list("ns", "f") == [(1, "a")]
    assert await store.save_flow("ns", "f", "b") == 3


async def test_a_deleted_flow_keeps_its_earlier_revisions_listed(store: Store) -> None:
    """Kestra's delete marks the last revision only: once the flow is created again, the
    revisions before the deletion are listed with the new one."""
    await store.save_flow("ns", "f", "a")
    await store.save_flow("ns", "f", "b")
    await store.delete_flow("ns", "f")
    assert await store.revisions.list("ns", "f") == [(1, "a")]
    assert await store.save_flow("ns", "f", "b") == 3
    assert await store.revisions.list("ns", "f") == [(1, "a"), (3, "b")]
    assert await store.get_flow("ns", "f", 2) == (2, "b")
