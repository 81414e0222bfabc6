//! Orders the models so that every table is built after the tables it reads.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::execution::session_state::SessionStateBuilder;

use super::EmbeddedModel;
use crate::error::{Result, StediError};

/// A model with the tables it reads.
#[derive(Debug, Clone)]
pub struct Node {
    /// The model.
    pub model: EmbeddedModel,
    /// Names of the tables its SQL reads (models or base tables).
    pub reads: BTreeSet<String>,
}

/// Orders `models` by dependency. `base` are tables that exist before any model runs
/// (the landing tables). A reference to anything else, or a cycle, is an error that
/// names the model file.
pub fn order(models: &[EmbeddedModel], base: &[&str]) -> Result<Vec<Node>> {
    // Only the parser is needed: a state without the built-in functions is enough.
    let state = SessionStateBuilder::new().build();
    let names: BTreeSet<&str> = models.iter().map(|m| m.name).collect();
    let mut nodes = BTreeMap::new();
    for model in models {
        let statement = state
            .sql_to_statement(model.sql, &datafusion::config::Dialect::Generic)
            .map_err(|e| StediError::Dag(format!("`{}` is not valid SQL: {e}", model.file)))?;
        let reads: BTreeSet<String> = state
            .resolve_table_references(&statement)
            .map_err(|e| StediError::Dag(format!("`{}`: {e}", model.file)))?
            .into_iter()
            .map(|t| t.table().to_string())
            .collect();
        for table in &reads {
            if !names.contains(table.as_str()) && !base.contains(&table.as_str()) {
                return Err(StediError::Dag(format!(
                    "`{}` reads `{table}`, which is neither a landing table nor a model",
                    model.file
                )));
            }
            if table == model.name {
                return Err(StediError::Dag(format!(
                    "`{}` reads its own table",
                    model.file
                )));
            }
        }
        nodes.insert(
            model.name,
            Node {
                model: *model,
                reads,
            },
        );
    }
    // Kahn's algorithm; among ready models the name decides, so the order is stable.
    let mut ordered = Vec::with_capacity(nodes.len());
    let mut built: BTreeSet<&str> = BTreeSet::new();
    while !nodes.is_empty() {
        let ready: Option<&str> = nodes
            .iter()
            .find(|(_, n)| {
                n.reads
                    .iter()
                    .all(|t| base.contains(&t.as_str()) || built.contains(t.as_str()))
            })
            .map(|(name, _)| *name);
        let Some(name) = ready else {
            let stuck: Vec<&str> = nodes.values().map(|n| n.model.file).collect();
            return Err(StediError::Dag(format!(
                "models read each other in a cycle: {}",
                stuck.join(", ")
            )));
        };
        if let Some(node) = nodes.remove(name) {
            built.insert(name);
            ordered.push(node);
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &'static str, sql: &'static str) -> EmbeddedModel {
        EmbeddedModel {
            zone: "trusted",
            name,
            file: name,
            sql,
        }
    }

    #[test]
    fn every_model_comes_after_what_it_reads() {
        let models = [
            model("c", "SELECT * FROM b JOIN a ON true"),
            model("b", "WITH x AS (SELECT * FROM a) SELECT * FROM x"),
            model("a", "SELECT * FROM raw"),
        ];
        let order: Vec<_> = order(&models, &["raw"])
            .unwrap()
            .into_iter()
            .map(|n| n.model.name)
            .collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn a_cycle_is_reported_with_the_files() {
        let models = [model("a", "SELECT * FROM b"), model("b", "SELECT * FROM a")];
        let err = order(&models, &[]).unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");
    }

    #[test]
    fn an_unknown_table_is_reported() {
        let err = order(&[model("a", "SELECT * FROM nope")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`nope`"), "{err}");
    }

    #[test]
    fn the_product_models_form_a_dag_over_the_landing_tables() {
        let base = [
            "customer_landing",
            "accelerometer_landing",
            "step_trainer_landing",
        ];
        let order = order(super::super::MODELS, &base).unwrap();
        let pos = |n: &str| order.iter().position(|m| m.model.name == n).unwrap();
        assert!(pos("customer_trusted") < pos("accelerometer_trusted"));
        assert!(pos("customers_curated") < pos("step_trainer_trusted"));
        assert!(pos("step_trainer_trusted") < pos("machine_learning_curated"));
    }
}
