//! stedi: a lakehouse for STEDI sensor data.
//!
//! Raw newline-delimited JSON feeds are landed verbatim, ingested into typed Delta
//! tables (bad records go to quarantine), and curated zone by zone by SQL models into
//! trusted and curated Delta tables. The modules follow the data:
//! [`lakehouse`] (where) → [`land`] → [`ingest`] → [`transform`] → [`serve`], and
//! [`erase`] to remove a person from all of it.
#![warn(missing_docs)]

pub mod catalog;
pub mod cli;
pub mod commands;
pub mod data_file;
pub mod delta;
pub mod erase;
pub mod error;
pub mod feed;
pub mod forgotten;
pub mod generate;
pub mod history;
pub mod ingest;
pub mod interrupt;
pub mod lakehouse;
pub mod land;
pub mod models;
pub mod pipeline;
pub mod progress;
pub mod serve;
pub mod session;
pub mod transform;
pub mod workers;

pub use error::{Result, StediError};
