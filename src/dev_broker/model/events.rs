//! The `dsync.*` events a change produces, carrying the objects as the broker sends them.

use super::directory::DirectoryModel;
use crate::dev_broker::objects::*;
use serde::Serialize;
use serde_json::{json, Map, Value};

impl DirectoryModel {
    fn event(&mut self, kind: &str, data: Value, at: Millis) -> BrokerEvent {
        BrokerEvent {
            object: "event".into(),
            id: self.mint_id("event_", at),
            event: kind.into(),
            data,
            created_at: format_time(at),
        }
    }

    /// An event carrying a user or group `object` as its data, with the `previous_attributes` of an update.
    pub(super) fn object_event(
        &mut self,
        kind: &str,
        object: impl Serialize,
        previous: Option<Map<String, Value>>,
        at: Millis,
    ) -> BrokerEvent {
        let mut data = serde_json::to_value(object).expect("a broker object serializes");
        if let Some(previous) = previous {
            data["previous_attributes"] = Value::Object(previous);
        }
        self.event(kind, data, at)
    }

    pub(super) fn membership_event(
        &mut self,
        kind: &str,
        group: u32,
        user: u32,
        at: Millis,
    ) -> BrokerEvent {
        let group_object = self.group_object(group);
        let data = json!({
            "directory_id": group_object.directory_id,
            "user": self.user_object(user, None),
            "group": group_object,
        });
        self.event(kind, data, at)
    }
}
