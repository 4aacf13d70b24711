//! The product's vocabulary: plans, roles, member status and the like, stored as text.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and serialised text.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "{s:?} is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum!(
    /// A workspace's plan; directory sync needs `growth` or above.
    Plan { Free => "free", Starter => "starter", Growth => "growth", Enterprise => "enterprise" }
);

impl Plan {
    /// Whether this plan includes directory sync.
    pub fn includes_directory_sync(self) -> bool {
        self >= Plan::Growth
    }
}

text_enum!(
    /// A member's role, lowest first: `owner` > `admin` > `builder` > `viewer`.
    Role { Viewer => "viewer", Builder => "builder", Admin => "admin", Owner => "owner" }
);

text_enum!(
    /// Whether a member can use the workspace.
    MemberStatus { Active => "active", Deprovisioned => "deprovisioned" }
);

text_enum!(
    /// Who owns a member's record.
    ManagedBy { Directory => "directory", Manual => "manual" }
);

text_enum!(
    /// Where a stored webhook event stands.
    EventStatus {
        Received => "received",
        Applied => "applied",
        Duplicate => "duplicate",
        Skipped => "skipped",
        Ignored => "ignored",
        Conflict => "conflict",
        Failed => "failed",
        Invalid => "invalid",
        Dismissed => "dismissed",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(
            Role::Owner > Role::Admin
                && Role::Admin > Role::Builder
                && Role::Builder > Role::Viewer
        );
    }

    #[test]
    fn directory_sync_needs_growth() {
        let with: Vec<_> = Plan::ALL
            .iter()
            .filter(|p| p.includes_directory_sync())
            .collect();
        assert_eq!(with, [&Plan::Growth, &Plan::Enterprise]);
    }

    #[test]
    fn text_round_trips() {
        for s in EventStatus::ALL {
            assert_eq!(s.as_str().parse::<EventStatus>(), Ok(*s));
        }
        assert!("superuser".parse::<Role>().unwrap_err().contains("viewer"));
    }
}
