//! The parity suite: every test here runs on SQLite, on Postgres and on Postgres through
//! PgBouncer in transaction mode (`<test>::sqlite`, `<test>::postgres`,
//! `<test>::pgbouncer`), each on a database of its own.

mod fixtures;

mod adopt;
mod bulk;
mod concurrency;
mod constraints;
mod errors;
mod foreign_writes;
mod generations;
mod json_sync;
mod leases;
mod migrations;
mod optimistic;
mod paging;
mod pooler;
mod raw_sql;
mod registry;
mod reliability;
mod review_findings;
mod review_issue13;
mod review_issue14;
mod review_issue15;
mod review_issue16;
mod review_live;
mod roundtrip;
mod schema;
mod schema_dumps;
mod schema_tools;
mod scoping;
mod security;
mod seeding;
mod snapshot_bootstrap;
mod snapshot_import;
mod snapshots;
mod sync;
mod sync_edges;
mod sync_http;
mod sync_leases;
mod sync_live;
mod sync_pipeline;
mod sync_removals;
mod sync_restore;
mod sync_restore_failures;
mod sync_restore_http;
mod sync_scoped_push;
mod sync_set_push;
mod tasks;
mod timeline;
mod tls;
mod tombstones;
mod transactions;
mod undecodable;
mod upgrade_values;
mod users_projects;
