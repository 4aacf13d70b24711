#!/usr/bin/env python3
"""Reads a dev-broker directory with the official WorkOS Python SDK and checks what it finds.

usage: list_with_sdk.py BASE_URL API_KEY DIRECTORY_ID USERS GROUPS [MEMBERSHIPS]

Lists every user and every group of the directory with the SDK's auto-paging, in both orders, and
exits non-zero unless the counts match and no id repeats. With MEMBERSHIPS, also lists each group's
members and checks their total. Exit codes: 0 all good, 1 a check failed, 2 bad usage, 3 no SDK.
"""

import sys

INSTALL_HINT = "install it with: pip install -r tests/sdk/requirements.txt"


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def all_items(page):
    return list(page.auto_paging_iter())


def unique_ids(items, what):
    ids = [item.id for item in items]
    duplicates = len(ids) - len(set(ids))
    check(duplicates == 0, f"{duplicates} {what} came back more than once")
    return set(ids)


def main(argv):
    if len(argv) not in (6, 7):
        print(__doc__, file=sys.stderr)
        return 2
    base_url, api_key, directory_id = argv[1], argv[2], argv[3]
    expected_users, expected_groups = int(argv[4]), int(argv[5])
    expected_memberships = int(argv[6]) if len(argv) == 7 else None

    try:
        import workos
        from workos import (
            AuthenticationError,
            NotFoundError,
            UnprocessableEntityError,
            WorkOSClient,
        )
    except ImportError as error:
        print(f"the workos package is not importable by {sys.executable} ({error}); {INSTALL_HINT}",
              file=sys.stderr)
        return 3

    client = WorkOSClient(api_key=api_key, client_id="client_dev", base_url=base_url)
    sync = client.directory_sync

    directories = all_items(sync.list_directories(limit=100))
    check(directory_id in {d.id for d in directories},
          f"{directory_id} is not among the directories {[d.id for d in directories]}")
    directory = sync.get_directory(directory_id)
    check(directory.id == directory_id, f"get_directory answered {directory.id}")

    # The SDK's default order is desc; walk both orders and compare.
    users = all_items(sync.list_users(directory=directory_id, limit=100))
    check(len(users) == expected_users, f"listed {len(users)} users, expected {expected_users}")
    user_ids = unique_ids(users, "users")
    check(all(u.directory_id == directory_id for u in users), "a user of another directory was listed")
    ascending = all_items(sync.list_users(directory=directory_id, limit=100, order="asc"))
    check(unique_ids(ascending, "users (asc)") == user_ids, "asc and desc listed different users")
    check([u.id for u in ascending] == [u.id for u in reversed(users)],
          "asc is not the reverse of desc")
    small_pages = all_items(sync.list_users(directory=directory_id))
    check(unique_ids(small_pages, "users (default limit)") == user_ids,
          "the default page size listed different users")

    # Roles as the broker assigns them: every user has its primary role among all its roles.
    for user in users:
        check(user.role is not None and user.roles, f"{user.id} has no role or roles")
        check(user.role.slug in [r.slug for r in user.roles],
              f"{user.id}: role {user.role.slug} is not among its roles")

    groups = all_items(sync.list_groups(directory=directory_id, limit=100))
    check(len(groups) == expected_groups, f"listed {len(groups)} groups, expected {expected_groups}")
    group_ids = unique_ids(groups, "groups")

    if users:
        first = sync.get_user(users[0].id)
        check(first.id == users[0].id and first.email == users[0].email, "get_user disagrees with the list")
    if groups:
        first = sync.get_group(groups[0].id)
        check(first.id == groups[0].id and first.name == groups[0].name, "get_group disagrees with the list")

    if expected_memberships is not None:
        total = 0
        for group in groups:
            members = all_items(sync.list_users(group=group.id, limit=100))
            member_ids = unique_ids(members, f"members of {group.id}")
            check(member_ids <= user_ids, f"{group.id} lists users outside the directory")
            total += len(members)
        check(total == expected_memberships,
              f"listed {total} memberships, expected {expected_memberships}")
        for user in users[:5]:
            joined = all_items(sync.list_groups(user=user.id, limit=100))
            check(unique_ids(joined, f"groups of {user.id}") <= group_ids,
                  f"{user.id} is in groups outside the directory")

    try:
        sync.get_user("directory_user_missing")
        fail("an unknown user was found")
    except NotFoundError:
        pass
    try:
        sync.list_users()
        fail("listing users with neither directory nor group was accepted")
    except UnprocessableEntityError:
        pass
    wrong = WorkOSClient(api_key="sk_test_wrong", client_id="client_dev", base_url=base_url,
                         max_retries=0)
    try:
        wrong.directory_sync.list_users(directory=directory_id)
        fail("a wrong API key was accepted")
    except AuthenticationError:
        pass

    version = getattr(workos, "__version__", None)
    if version is None:
        from importlib.metadata import version as package_version
        version = package_version("workos")
    print(f"ok: workos {version} listed {len(users)} users and {len(groups)} groups"
          + ("" if expected_memberships is None else f" and {expected_memberships} memberships"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
