//! Serving: read-only SQL over every table of the lakehouse.

pub mod query;
