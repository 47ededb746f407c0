//! Studio, end to end: over HTTP on every backend (`access.rs`, `tables.rs`, `edits.rs`),
//! and in a real headless Chromium (`browser.rs`).

mod driver;
mod web;

mod access;
mod browser;
mod edits;
mod pictures;
mod replica;
mod schema;
mod sync_page;
mod tables;
