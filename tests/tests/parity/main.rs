//! The parity suite: every test here runs on SQLite and on Postgres (`<test>::sqlite`,
//! `<test>::postgres`), each on a database of its own.

mod fixtures;

mod constraints;
mod migrations;
mod schema;
