//! The OpenAPI schemas of the values Rollcall checks and shows (roles, statuses, plans, names, emails):
//! beside the domain types, so the records that carry them can be documented wherever they live.

use crate::domain::{
    CauseKind, DeliverySource, EventStatus, ManagedBy, MemberStatus, Plan, Role, RunPhase,
    RunStatus, RunTrigger,
};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

/// A string that is one of `values`.
pub fn one_of<'a>(values: impl IntoIterator<Item = &'a str>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .into()
}

/// A string that is one of `values`, with what they mean (a field whose schema is given by a function
/// loses its doc comment in the document).
pub fn one_of_described<'a>(
    values: impl IntoIterator<Item = &'a str>,
    description: &str,
) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .into()
}

pub fn role() -> Schema {
    one_of(Role::ALL.iter().map(|r| r.as_str()))
}

/// A role the directory may give: any but `owner`.
pub fn directory_role() -> Schema {
    one_of(
        Role::ALL
            .iter()
            .filter(|r| **r != Role::Owner)
            .map(|r| r.as_str()),
    )
}

pub fn email() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(320))
        .into()
}

pub fn plan() -> Schema {
    one_of(Plan::ALL.iter().map(|p| p.as_str()))
}

pub fn member_status() -> Schema {
    one_of(MemberStatus::ALL.iter().map(|s| s.as_str()))
}

pub fn event_status() -> Schema {
    one_of(EventStatus::ALL.iter().map(|s| s.as_str()))
}

pub fn delivery_source() -> Schema {
    one_of_described(
        DeliverySource::ALL.iter().map(|s| s.as_str()),
        "The path that brought it first: a webhook, or the Events API tail.",
    )
}

pub fn run_status() -> Schema {
    one_of(RunStatus::ALL.iter().map(|s| s.as_str()))
}

pub fn cause_kind() -> Schema {
    one_of_described(
        CauseKind::ALL.iter().map(|k| k.as_str()),
        "A broker event, a full pull, a request with a stored API token, or the configured operator token.",
    )
}

pub fn run_phase() -> Schema {
    one_of(RunPhase::ALL.iter().map(|p| p.as_str()))
}

pub fn run_trigger() -> Schema {
    one_of_described(
        RunTrigger::ALL.iter().map(|t| t.as_str()),
        "What started the run: the schedule, an applied `dsync.activated`, the workspace turning directory \
         sync on, an operator, or the Events API tail starting over.",
    )
}

pub fn managed_by() -> Schema {
    one_of(ManagedBy::ALL.iter().map(|m| m.as_str()))
}

/// A name as admins give it: 1 to 200 characters, not only spaces, no control characters (as
/// `check_name` accepts them).
pub fn name() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(200))
        .pattern(Some(
            "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        ))
        .into()
}
