#!/usr/bin/env python3
"""Pages through a dev broker's Events API with the official WorkOS Python SDK and checks what it finds.

usage: events_with_sdk.py BASE_URL API_KEY RANGE_START

Lists every dsync.* event with the SDK's auto-paging (which follows `after`) and by hand with `after`,
filtered by type, and from RANGE_START (an ISO-8601 time: its first page, then `after`); checks the
orders agree and no id repeats, then prints one JSON object with the ids found. Exit codes: 0 all good,
1 a check failed, 2 bad usage, 3 no SDK.
"""

import json
import sys

INSTALL_HINT = "install it with: pip install -r tests/sdk/requirements.txt"

DSYNC_EVENTS = [
    "dsync.activated",
    "dsync.deleted",
    "dsync.user.created",
    "dsync.user.updated",
    "dsync.user.deleted",
    "dsync.group.created",
    "dsync.group.updated",
    "dsync.group.deleted",
    "dsync.group.user_added",
    "dsync.group.user_removed",
]


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def ids_of(items, what):
    ids = [item.id for item in items]
    check(len(ids) == len(set(ids)), f"an event came back more than once in {what}")
    check(ids == sorted(ids), f"{what} is not oldest first")
    return ids


def by_hand(events, limit, **first):
    """Follows `after` from a first page asked with `first`, as a tail does."""
    page = events.list_events(events=DSYNC_EVENTS, limit=limit, **first)
    items = list(page.data)
    while page.list_metadata.after is not None:
        page = events.list_events(events=DSYNC_EVENTS, limit=limit, after=page.list_metadata.after)
        items.extend(page.data)
    return items


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, api_key, range_start = argv[1], argv[2], argv[3]
    try:
        from workos import BadRequestError, UnprocessableEntityError, WorkOSClient
    except ImportError as error:
        print(f"the workos package is not importable by {sys.executable} ({error}); {INSTALL_HINT}",
              file=sys.stderr)
        return 3

    client = WorkOSClient(api_key=api_key, client_id="client_dev", base_url=base_url)
    events = client.events

    paged = ids_of(list(events.list_events(events=DSYNC_EVENTS, limit=7).auto_paging_iter()),
                   "auto-paging")
    check(len(paged) > 7, f"only {len(paged)} events: nothing to page through")
    check(ids_of(by_hand(events, 5), "paging by hand") == paged, "paging by hand found other events")

    created = list(events.list_events(events=["dsync.user.created"], limit=100).auto_paging_iter())
    check(all(e.event == "dsync.user.created" for e in created), "the type filter let others through")
    check(set(ids_of(created, "user.created")) <= set(paged), "a filtered event is not in the full list")

    since = ids_of(by_hand(events, 3, range_start=range_start), "from range_start")
    check(since == paged[len(paged) - len(since):], "range_start did not give the newest events")

    try:
        events.list_events(events=DSYNC_EVENTS, limit=101)
        fail("limit 101 was accepted")
    except UnprocessableEntityError:
        pass
    try:
        events.list_events(events=DSYNC_EVENTS, range_start="2000-01-01T00:00:00Z")
        fail("a range_start before the retention window was accepted")
    except BadRequestError:
        pass

    print(json.dumps({"events": paged, "user_created": len(created), "since": since}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
