//! wijkbudget: an event-sourced budget ledger for Dutch wijkbudgetten.
//! See ARCHITECTURE.md for the map.

pub mod domain;
pub mod store;
