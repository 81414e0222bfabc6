//! The SQL models: one file per trusted or curated table, compiled into the binary.
//!
//! A model is a `SELECT` over other tables by name. Its folder is its zone and its file
//! name is its table; the tables it reads are found in its SQL, not listed by hand.

pub mod dag;
pub mod header;

use crate::error::{Result, StediError};
use crate::lakehouse::layout::{TableId, Zone};
pub use header::{Grain, Header};

/// A model as embedded at build time.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedModel {
    /// Zone folder (`trusted` or `curated`).
    pub zone: &'static str,
    /// Table name.
    pub name: &'static str,
    /// Path in the repository, for messages.
    pub file: &'static str,
    /// The SQL text.
    pub sql: &'static str,
}

/// Every model of the product, in file order (not dependency order; see `dag`).
pub const MODELS: &[EmbeddedModel] = include!(concat!(env!("OUT_DIR"), "/models.rs"));

impl EmbeddedModel {
    /// What the model's header declares (checked when stedi was built, so a product
    /// model always has a valid one).
    pub fn header(&self) -> Result<Header> {
        header::parse(self.name, self.sql)
            .map_err(|e| StediError::Dag(format!("`{}`: {e}", self.file)))
    }

    /// The table the model builds.
    pub fn table(&self) -> TableId {
        TableId::new(
            Zone::from_folder(self.zone).unwrap_or(Zone::Curated),
            self.name,
        )
    }
}

/// Which readings of a consenting customer may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ConsentPolicy {
    /// Every reading of a customer who consented (at any time).
    #[default]
    AnyTime,
    /// Only readings taken at or after the customer's consent date.
    SinceConsent,
}

impl ConsentPolicy {
    /// The name as used on the command line and returned by `consent_policy()` in SQL.
    pub fn name(self) -> &'static str {
        match self {
            ConsentPolicy::AnyTime => "any-time",
            ConsentPolicy::SinceConsent => "since-consent",
        }
    }
}
