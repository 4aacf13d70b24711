//! Writing the change feed (rule 23) from the audit log's entries: each entry that changes a member, a
//! team or a team membership becomes a change, in the same transaction, with the next position of its
//! workspace (a counter on the workspace's row, taken in that transaction: two writers of one workspace
//! take it one after the other, so positions commit in order). Reading the feed is
//! [`crate::changes`]'s.

use crate::db::models::{NewAuditEntry, NewChange};
use crate::db::schema::{changes, workspaces};
use crate::db::DbConnection;
use crate::domain::{ChangeType, ManagedBy, MemberStatus};
use crate::on_backend;
use diesel::prelude::*;
use serde_json::{json, Map, Value};

/// The member fields whose change a feed entry names (`changes`), with what they were and became.
const MEMBER_FIELDS: [&str; 7] = [
    "email",
    "first_name",
    "last_name",
    "role",
    "status",
    "managed_by",
    "directory_user_id",
];

/// Writes the feed's changes for these audit entries (those that change a member, a team or a team
/// membership), each with the next position of its workspace; returns how many.
pub fn record(conn: &mut DbConnection, entries: &[NewAuditEntry]) -> QueryResult<usize> {
    let mut drafts: Vec<NewChange> = entries.iter().filter_map(change_of).collect();
    if drafts.is_empty() {
        return Ok(0);
    }
    debug_assert!(
        crate::db::ordering::is_feed_writer(conn)?,
        "a change is written only in a transaction marked as a writer of the feed"
    );
    // Entries come workspace by workspace in practice; each run of one workspace takes its positions
    // with one update of the counter.
    let mut start = 0;
    while start < drafts.len() {
        let workspace = drafts[start].workspace_id.clone();
        let end = drafts[start..]
            .iter()
            .position(|d| d.workspace_id != workspace)
            .map_or(drafts.len(), |n| start + n);
        let count = (end - start) as i64;
        let last: i64 = on_backend!(conn, |c| diesel::update(workspaces::table.find(&workspace))
            .set(workspaces::change_position.eq(workspaces::change_position + count))
            .returning(workspaces::change_position)
            .get_result(c))?;
        for (i, draft) in drafts[start..end].iter_mut().enumerate() {
            draft.position = last - count + 1 + i as i64;
        }
        start = end;
    }
    crate::insert_rows!(
        conn,
        changes,
        &drafts,
        [
            workspace_id: diesel::sql_types::Text = "text",
            position: diesel::sql_types::BigInt = "bigint",
            occurred_at: diesel::sql_types::Timestamp = "timestamp",
            change_type: diesel::sql_types::Text = "text",
            subject_id: diesel::sql_types::Text = "text",
            data: diesel::sql_types::Text = "text",
            cause_type: diesel::sql_types::Text = "text",
            cause_id: diesel::sql_types::Text = "text",
        ],
        "",
        |c, chunk| diesel::insert_into(changes::table).values(chunk).execute(c)?
    )
}

/// The feed's change for an audit entry, if it changes a member, a team or a team membership (its position
/// is given when it is written).
fn change_of(entry: &NewAuditEntry) -> Option<NewChange> {
    let before = parse(&entry.before);
    let after = parse(&entry.after);
    let (change_type, data) = match entry.subject_type.as_str() {
        "member" => member_change(before, after)?,
        "team" => team_change(&entry.action, &entry.subject_id, before, after)?,
        "team_member" => team_member_change(&entry.subject_id, before, after?)?,
        _ => return None,
    };
    Some(NewChange {
        workspace_id: entry.workspace_id.clone(),
        position: 0,
        occurred_at: entry.occurred_at,
        change_type: change_type.as_str().to_string(),
        subject_id: entry.subject_id.clone(),
        data: data.to_string(),
        cause_type: entry.cause_type.clone(),
        cause_id: entry.cause_id.clone(),
    })
}

fn parse(text: &Option<String>) -> Option<Value> {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

/// A field of a recorded member read back as its type; `None` when absent or not one of its values.
fn field_of<T: std::str::FromStr>(member: &Value, field: &str) -> Option<T> {
    member[field].as_str()?.parse().ok()
}

/// A member provisioned, added, changed or removed: the member after the change (before it, once
/// removed) and, for a change, each field that changed with what it was.
fn member_change(before: Option<Value>, after: Option<Value>) -> Option<(ChangeType, Value)> {
    use MemberStatus::{Active, Deprovisioned};
    match (before, after) {
        (None, Some(after)) => {
            let kind = if field_of::<ManagedBy>(&after, "managed_by") == Some(ManagedBy::Directory)
            {
                ChangeType::MemberProvisioned
            } else {
                ChangeType::MemberAdded
            };
            Some((kind, json!({ "member": after })))
        }
        (Some(before), None) => Some((ChangeType::MemberRemoved, json!({ "member": before }))),
        (Some(before), Some(after)) => {
            let mut changed = Map::new();
            for field in MEMBER_FIELDS {
                if before[field] != after[field] {
                    changed.insert(
                        field.to_string(),
                        json!({ "from": before[field], "to": after[field] }),
                    );
                }
            }
            let status = |member: &Value| field_of::<MemberStatus>(member, "status");
            let kind = match (status(&before), status(&after)) {
                (Some(Active), Some(Deprovisioned)) => ChangeType::MemberDeprovisioned,
                (Some(Deprovisioned), Some(Active)) => ChangeType::MemberReprovisioned,
                _ if changed.contains_key("role") => ChangeType::MemberRoleChanged,
                _ if !changed.is_empty() => ChangeType::MemberUpdated,
                // An entry that changed none of the member's fields (a conflict noted, say).
                _ => return None,
            };
            Some((kind, json!({ "member": after, "changes": changed })))
        }
        (None, None) => None,
    }
}

/// A team created, renamed or deleted: the team (`id`, `name`) after the change (before it, once deleted).
fn team_change(
    action: &str,
    team_id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Option<(ChangeType, Value)> {
    let team =
        |side: Option<Value>| json!({ "id": team_id, "name": side.map(|s| s["name"].clone()) });
    match action {
        "team.created" => Some((ChangeType::TeamCreated, json!({ "team": team(after) }))),
        "team.renamed" => {
            let from = before.map(|b| b["name"].clone());
            let team = team(after);
            let to = team["name"].clone();
            Some((
                ChangeType::TeamRenamed,
                json!({ "team": team, "changes": { "name": { "from": from, "to": to } } }),
            ))
        }
        "team.deleted" => Some((ChangeType::TeamDeleted, json!({ "team": team(before) }))),
        _ => None,
    }
}

/// A source added to or taken from a member in a team: `team.member_added` when it brought the member
/// into the team, `team.member_removed` when it took them out, `team.member_sources_changed` when they
/// stay in it for another reason. With the team member after the change (`sources` empty once they left).
fn team_member_change(
    member_id: &str,
    before: Option<Value>,
    after: Value,
) -> Option<(ChangeType, Value)> {
    let team_sources = after.get("team_sources")?.as_array()?.clone();
    let added = after.get("source").cloned();
    let removed = before.and_then(|b| b.get("source").cloned());
    let had = team_sources.len() as i64 - i64::from(added.is_some()) + i64::from(removed.is_some());
    let kind = match (had > 0, team_sources.is_empty()) {
        (false, false) => ChangeType::TeamMemberAdded,
        (true, true) => ChangeType::TeamMemberRemoved,
        _ => ChangeType::TeamMemberSourcesChanged,
    };
    let team_id = after["team_id"].clone();
    Some((
        kind,
        json!({
            "team_member": { "team_id": team_id, "member_id": member_id, "sources": team_sources },
            "source_added": added,
            "source_removed": removed,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(status: &str, role: &str) -> Value {
        json!({ "id": "m1", "email": "a@example.com", "first_name": "A", "last_name": null,
                "role": role, "status": status, "managed_by": "directory", "directory_user_id": "u1",
                "updated_at": "2026-12-06T00:00:00Z" })
    }

    #[test]
    fn a_member_change_is_named_by_what_changed() {
        assert_eq!(
            kind_of(
                member("active", "viewer"),
                member("deprovisioned", "viewer")
            ),
            Some(ChangeType::MemberDeprovisioned)
        );
        assert_eq!(
            kind_of(member("deprovisioned", "viewer"), member("active", "admin")),
            Some(ChangeType::MemberReprovisioned)
        );
        assert_eq!(
            kind_of(member("active", "viewer"), member("active", "admin")),
            Some(ChangeType::MemberRoleChanged)
        );
        let mut renamed = member("active", "viewer");
        renamed["first_name"] = json!("B");
        renamed["updated_at"] = json!("2026-12-07T00:00:00Z");
        let (kind, data) = member_change(Some(member("active", "viewer")), Some(renamed)).unwrap();
        assert_eq!(kind, ChangeType::MemberUpdated);
        assert_eq!(
            data["changes"],
            json!({ "first_name": { "from": "A", "to": "B" } })
        );
        // Only the timestamp moved: nothing for the feed.
        let mut touched = member("active", "viewer");
        touched["updated_at"] = json!("2026-12-08T00:00:00Z");
        assert_eq!(kind_of(member("active", "viewer"), touched), None);
    }

    fn kind_of(b: Value, a: Value) -> Option<ChangeType> {
        member_change(Some(b), Some(a)).map(|(k, _)| k)
    }

    #[test]
    fn a_source_change_says_whether_the_member_joined_or_left_the_team() {
        let manual = json!({ "type": "manual" });
        let group = json!({ "type": "directory_group", "group_id": "g1" });
        let kind = |before: Option<Value>, after: Value| {
            team_member_change("m1", before, after).map(|(k, _)| k)
        };
        assert_eq!(
            kind(
                None,
                json!({ "team_id": "t", "source": manual, "team_sources": [manual] })
            ),
            Some(ChangeType::TeamMemberAdded)
        );
        assert_eq!(
            kind(
                None,
                json!({ "team_id": "t", "source": group, "team_sources": [manual, group] })
            ),
            Some(ChangeType::TeamMemberSourcesChanged)
        );
        assert_eq!(
            kind(
                Some(json!({ "team_id": "t", "source": group })),
                json!({ "team_id": "t", "team_sources": [] })
            ),
            Some(ChangeType::TeamMemberRemoved)
        );
        assert_eq!(
            kind(
                Some(json!({ "team_id": "t", "source": group })),
                json!({ "team_id": "t", "source": manual, "team_sources": [manual] })
            ),
            Some(ChangeType::TeamMemberSourcesChanged)
        );
    }
}
