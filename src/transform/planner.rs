//! How a model's SQL becomes a plan: which side of each join is held in memory, and
//! whether it is held once for all cores or split between them.
//!
//! A hash join holds one side (the build side) in memory and streams the other past it.
//! Held once, one core builds it while the other waits, and every core then probes it
//! with its own share of the streamed side as it comes. Split between the cores, both
//! sides are first shuffled by key so that each core builds and probes its part: the
//! build is parallel, but every row of the streamed side is moved once more. What the
//! split costs grows with the streamed side, what it saves with the build side; the
//! engine's own rule looks at the build side's size alone.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::{StatisticsArgs, StatisticsContext};
use datafusion::prelude::SessionContext;

use crate::session::memory_limit;

/// How many times more rows the streamed side of a join must be estimated to have than
/// the side held in memory for that side to be held once for all cores.
const STREAMED_PER_HELD: usize = 8;

/// The planner a model runs with. Its joins hold the table the model's SQL names first
/// in memory, as written: the planner's estimates of intermediate results (a join's, an
/// aggregate's) are guesses, while the model's author knows which side is the small one.
///
/// That side is held once for all cores, so that the other side is not shuffled between
/// them, when it is estimated under 1/32 of the memory limit or at most an eighth of the
/// other side's rows (customers against their readings); otherwise it is split between
/// the cores.
pub fn model_planner(ctx: &SessionContext) -> SessionState {
    let mut state = ctx.state();
    let optimizer = &mut state.config_mut().options_mut().optimizer;
    optimizer.join_reordering = false;
    if std::env::var_os("DATAFUSION_OPTIMIZER_HASH_JOIN_SINGLE_PARTITION_THRESHOLD").is_none() {
        optimizer.hash_join_single_partition_threshold = memory_limit() / 32;
    }
    // The engine decides how each join is held in its `join_selection` rule; a join
    // decided before it keeps that decision.
    let mut rules = state.physical_optimizers().to_vec();
    let at = rules
        .iter()
        .position(|rule| rule.name() == "join_selection")
        .unwrap_or(0);
    rules.insert(at, Arc::new(SmallSideHeldOnce));
    SessionStateBuilder::new_from_existing(state)
        .with_physical_optimizer_rules(rules)
        .build()
}

/// Holds the build side of a hash join once for all cores when the streamed side is
/// estimated to have at least [`STREAMED_PER_HELD`] times its rows.
#[derive(Debug)]
struct SmallSideHeldOnce;

impl PhysicalOptimizerRule for SmallSideHeldOnce {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            // A null-aware anti join is held once already; other modes were chosen by
            // the query's author.
            if *join.partition_mode() != PartitionMode::Auto || join.null_aware {
                return Ok(Transformed::no(node));
            }
            match (estimated_rows(join.left()), estimated_rows(join.right())) {
                (Some(held), Some(streamed))
                    if held.saturating_mul(STREAMED_PER_HELD) <= streamed =>
                {
                    let held_once = join
                        .builder()
                        .with_partition_mode(PartitionMode::CollectLeft)
                        .build()?;
                    Ok(Transformed::yes(
                        Arc::new(held_once) as Arc<dyn ExecutionPlan>
                    ))
                }
                _ => Ok(Transformed::no(node)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "small_side_held_once"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The rows a plan is estimated to produce, when its statistics say.
fn estimated_rows(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    StatisticsContext::new()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .ok()?
        .num_rows
        .get_value()
        .copied()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
    use datafusion::physical_plan::{ExecutionPlan, displayable};

    use super::model_planner;
    use crate::session::session;

    /// A table of one column `column` holding `rows` numbers.
    fn numbers(column: &str, rows: i64) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            column,
            DataType::Int64,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .unwrap();
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
    }

    /// The hash join in a plan (the test queries have one).
    fn hash_join(plan: &Arc<dyn ExecutionPlan>) -> &HashJoinExec {
        if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
            return join;
        }
        let child = plan
            .children()
            .into_iter()
            .next()
            .expect("a plan with a hash join");
        hash_join(child)
    }

    #[tokio::test]
    async fn a_model_holds_in_memory_the_table_its_sql_names_first() {
        let ctx = session();
        ctx.register_table("readings", numbers("instant", 10_000))
            .unwrap();
        ctx.register_table("customers", numbers("number", 10))
            .unwrap();
        let sql = "SELECT r.instant FROM readings AS r JOIN customers AS c ON c.number = r.instant";
        let build_side = |plan: &Arc<dyn ExecutionPlan>| {
            let left = hash_join(plan).left().schema();
            left.field(0).name().clone()
        };

        // Left to itself, the planner holds the smaller table in memory...
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        assert_eq!(
            build_side(&plan),
            "number",
            "{}",
            displayable(plan.as_ref()).indent(false)
        );

        // ...while a model keeps the order its author wrote.
        let state = model_planner(&ctx);
        let logical = state.create_logical_plan(sql).await.unwrap();
        let plan = state.create_physical_plan(&logical).await.unwrap();
        assert_eq!(
            build_side(&plan),
            "instant",
            "{}",
            displayable(plan.as_ref()).indent(false)
        );
    }

    /// How a model joins `held` numbers (named first) with `streamed` numbers, when the
    /// engine's own rule would split any build side between the cores.
    async fn join_mode(held: i64, streamed: i64) -> PartitionMode {
        let ctx = session();
        ctx.register_table("customers", numbers("number", held))
            .unwrap();
        ctx.register_table("readings", numbers("instant", streamed))
            .unwrap();
        let mut state = model_planner(&ctx);
        let optimizer = &mut state.config_mut().options_mut().optimizer;
        optimizer.hash_join_single_partition_threshold = 0;
        optimizer.hash_join_single_partition_threshold_rows = 0;
        let sql = "SELECT r.instant FROM customers AS c JOIN readings AS r ON r.instant = c.number";
        let logical = state.create_logical_plan(sql).await.unwrap();
        let plan = state.create_physical_plan(&logical).await.unwrap();
        *hash_join(&plan).partition_mode()
    }

    #[tokio::test]
    async fn a_side_far_smaller_than_the_other_is_held_once_for_all_cores() {
        assert_eq!(join_mode(100, 10_000).await, PartitionMode::CollectLeft);
        assert_eq!(join_mode(1_250, 10_000).await, PartitionMode::CollectLeft);
        assert_eq!(join_mode(5_000, 10_000).await, PartitionMode::Partitioned);
    }
}
