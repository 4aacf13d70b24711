//! The tables, written by hand with types both backends share: text ids, UTC timestamps, JSON as text.

diesel::table! {
    workspaces (id) {
        id -> Text,
        name -> Text,
        plan -> Text,
        organization_id -> Text,
        directory_sync_enabled -> Bool,
        default_role -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        change_position -> BigInt,
        role_source -> Text,
        default_role_slug -> Text,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        workspace_id -> Nullable<Text>,
        token_hash -> Text,
        created_at -> Timestamp,
        name -> Nullable<Text>,
        last_used_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    directories (id) {
        id -> Text,
        organization_id -> Text,
        directory_type -> Text,
        name -> Text,
        state -> Text,
        source_updated_at -> Timestamp,
        source_event_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        last_synced_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    directory_users (id) {
        id -> Text,
        directory_id -> Text,
        idp_id -> Text,
        email -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        state -> Text,
        snapshot -> Text,
        source_updated_at -> Timestamp,
        source_event_at -> Timestamp,
        ever_active -> Bool,
        deleted_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        role_slugs -> Text,
    }
}

diesel::table! {
    directory_role_mappings (workspace_id, slug) {
        workspace_id -> Text,
        slug -> Text,
        role -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    directory_groups (id) {
        id -> Text,
        directory_id -> Text,
        idp_id -> Text,
        name -> Text,
        snapshot -> Text,
        source_updated_at -> Timestamp,
        source_event_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    directory_group_memberships (group_id, user_id) {
        group_id -> Text,
        user_id -> Text,
        directory_id -> Text,
        is_member -> Bool,
        last_event_at -> Timestamp,
        updated_at -> Timestamp,
        last_event_id -> Nullable<Text>,
    }
}

diesel::table! {
    members (id) {
        id -> Text,
        workspace_id -> Text,
        email -> Text,
        email_key -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        role -> Text,
        status -> Text,
        managed_by -> Text,
        directory_user_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> BigInt,
        event_id -> Nullable<Text>,
        event_type -> Nullable<Text>,
        directory_id -> Nullable<Text>,
        event_created_at -> Nullable<Timestamp>,
        body -> Binary,
        status -> Text,
        reason -> Nullable<Text>,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        received_at -> Timestamp,
        processed_at -> Nullable<Timestamp>,
        redeliveries -> Integer,
        source -> Text,
        lane -> Text,
        body_hash -> Nullable<Text>,
    }
}

diesel::table! {
    event_tail (id) {
        id -> Integer,
        cursor -> Nullable<Text>,
        cursor_event_at -> Nullable<Timestamp>,
        resume_from -> Nullable<Timestamp>,
        last_poll_at -> Nullable<Timestamp>,
        events_stored -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        workspace_id -> Text,
        occurred_at -> Timestamp,
        action -> Text,
        subject_type -> Text,
        subject_id -> Text,
        before -> Nullable<Text>,
        after -> Nullable<Text>,
        cause_type -> Text,
        cause_id -> Text,
    }
}

diesel::table! {
    teams (id) {
        id -> Text,
        workspace_id -> Text,
        name -> Text,
        name_key -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    team_member_sources (team_id, member_id, source_type, group_id) {
        team_id -> Text,
        member_id -> Text,
        source_type -> Text,
        group_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    team_links (team_id, group_id) {
        team_id -> Text,
        group_id -> Text,
        workspace_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    role_mappings (workspace_id, group_id) {
        workspace_id -> Text,
        group_id -> Text,
        role -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> Text,
        directory_id -> Text,
        trigger -> Text,
        force -> Bool,
        status -> Text,
        counts -> Nullable<Text>,
        error -> Nullable<Text>,
        requests -> Integer,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        phase -> Text,
        users_listed -> Integer,
        lease_until -> Nullable<Timestamp>,
        lease_holder -> Nullable<Text>,
    }
}

diesel::table! {
    lane_heads (lane) {
        lane -> Text,
        received_through -> BigInt,
    }
}

diesel::table! {
    apply_lanes (lane) {
        lane -> Text,
        applied_through -> BigInt,
    }
}

diesel::table! {
    /// The change feed. On PostgreSQL the table also has `txid` (`xid8`), read by SQL of its own.
    changes (id) {
        id -> BigInt,
        workspace_id -> Text,
        position -> BigInt,
        occurred_at -> Timestamp,
        change_type -> Text,
        subject_id -> Text,
        data -> Text,
        cause_type -> Text,
        cause_id -> Text,
    }
}

diesel::table! {
    change_feed_pruned (id) {
        id -> Integer,
        through_txid -> Text,
        through_id -> BigInt,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        workspace_id -> Text,
        url -> Text,
        description -> Text,
        event_types -> Text,
        secret -> Text,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        delivered_through -> BigInt,
        failing_since -> Nullable<Timestamp>,
        failed_attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        lease_holder -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        batch_size -> Integer,
        retry_through -> Nullable<BigInt>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> BigInt,
        endpoint_id -> Text,
        message_id -> Text,
        position -> BigInt,
        attempted_at -> Timestamp,
        status_code -> Nullable<Integer>,
        latency_ms -> Integer,
        error -> Nullable<Text>,
        response -> Nullable<Text>,
    }
}

diesel::table! {
    scim_directories (directory_id) {
        directory_id -> Text,
        workspace_id -> Text,
        clock -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    scim_tokens (id) {
        id -> Text,
        directory_id -> Text,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    scim_resources (directory_id, id) {
        directory_id -> Text,
        id -> Text,
        resource_type -> Text,
        name_key -> Text,
        external_id -> Nullable<Text>,
        body -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    apply_lanes,
    lane_heads,
    event_tail,
    sync_runs,
    teams,
    team_member_sources,
    team_links,
    role_mappings,
    directory_role_mappings,
    workspaces,
    api_tokens,
    directories,
    directory_users,
    directory_groups,
    directory_group_memberships,
    members,
    webhook_events,
    audit_log,
    changes,
    webhook_endpoints,
    scim_directories,
    scim_tokens,
    scim_resources,
);
