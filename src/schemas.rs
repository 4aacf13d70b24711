//! The OpenAPI schemas of the values Rollcall checks that are not one of the product's words (those, such
//! as roles and statuses, document themselves: `domain::text_enum!`): names, emails, the roles the
//! directory may give.

use crate::domain::Role;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

pub use crate::domain::one_of;

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
