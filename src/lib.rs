//! wijkbudget: an event-sourced budget ledger for Dutch wijkbudgetten.
//! See ARCHITECTURE.md for the map.

pub mod auth;
pub mod cli;
pub mod demo;
pub mod domain;
pub mod failpoint;
pub mod http;
pub mod import;
pub mod ledger;
#[path = "../projections/mod.rs"]
pub mod projections;
pub mod service;
pub mod spreadsheet;
pub mod store;
pub mod verify;
pub mod web;
