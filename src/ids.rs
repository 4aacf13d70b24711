//! Identifiers: those Rollcall hands out (a readable prefix and a ULID, so they sort by creation time) and
//! the broker's, each its own type so one cannot be passed where another is meant.

/// A new identifier such as `ws_01J…` or `mem_01J…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}

/// Declares an identifier type: a string that is stored in a `TEXT` column (diesel), serialised as the
/// string (serde), and shown as it.
macro_rules! text_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize, diesel::AsExpression, diesel::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        $crate::domain::stored_as_text!($name, |text: String| Ok($name(text)));

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_id!(
    /// A broker directory's id (`directory_…`).
    DirectoryId
);

text_id!(
    /// A directory user's id, as the broker names it (`directory_user_…`).
    DirectoryUserId
);

text_id!(
    /// A directory group's id, as the broker names it (`directory_group_…`).
    DirectoryGroupId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_serialises_as_its_text() {
        let id = DirectoryGroupId::from("directory_group_1");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            r#""directory_group_1""#
        );
        let back: DirectoryGroupId = serde_json::from_str(r#""directory_group_1""#).unwrap();
        assert_eq!(back, id);
        assert_eq!(id.to_string(), "directory_group_1");
    }
}
