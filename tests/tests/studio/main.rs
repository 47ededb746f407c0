//! Studio, end to end: over HTTP on every backend (`access.rs`, `tables.rs`, `edits.rs`,
//! `pictures.rs`, `schema.rs`, `dead_letters.rs`),
//! and in a real headless Chromium (`browser.rs`).

mod driver;
mod web;

mod access;
mod browser;
mod dead_letters;
mod edits;
mod hostile;
mod pictures;
mod replica;
mod schema;
mod tables;
