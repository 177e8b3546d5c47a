//! wijkbudget: an event-sourced budget ledger for Dutch wijkbudgetten.
//! See ARCHITECTURE.md for the map.

pub mod domain;
pub mod ledger;
pub mod store;
#[path = "../projections/mod.rs"]
pub mod projections;
