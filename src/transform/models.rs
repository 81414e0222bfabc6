//! The SQL models: one file per trusted or curated table, compiled into the binary.
//!
//! A model is a `SELECT` over other tables by name. Its folder is its zone and its file
//! name is its table; the tables it reads are found in its SQL, not listed by hand.

use crate::lakehouse::layout::{TableId, Zone};

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
    /// The table the model builds.
    pub fn table(&self) -> TableId {
        TableId::new(
            Zone::from_folder(self.zone).unwrap_or(Zone::Curated),
            self.name,
        )
    }
}
