//! SQL aggregates over the latency histograms of `span_stats.hist`:
//!
//! - `hist_quantile(hist, q)`: merges the histograms of the group's rows and returns their
//!   `q` quantile (0..=1, a literal) in milliseconds, within 2 % of the exact
//!   `percentile_cont` of the durations counted; NULL for a group with no counts.
//! - `hist_merge(hist)`: the merged histogram of the group (Binary, same encoding), to merge
//!   again or to keep.
//!
//! NULL histograms are skipped, so `hist_quantile(case when <cond> then hist end, 0.99)`
//! takes a quantile over the rows matching `<cond>` only.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use osprey_store::hist::HistSum;
use std::sync::Arc;

/// Registers `hist_quantile` and `hist_merge`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::from(HistAgg::new(true)));
    ctx.register_udaf(AggregateUDF::from(HistAgg::new(false)));
}

/// `hist_quantile` (with a quantile) or `hist_merge`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct HistAgg {
    quantile: bool,
    signature: Signature,
}

impl HistAgg {
    fn new(quantile: bool) -> Self {
        let bins = [
            DataType::Binary,
            DataType::LargeBinary,
            DataType::BinaryView,
        ];
        let sigs = if quantile {
            bins.iter()
                .flat_map(|b| {
                    [DataType::Float64, DataType::Int64]
                        .into_iter()
                        .map(|q| TypeSignature::Exact(vec![b.clone(), q]))
                })
                .collect()
        } else {
            bins.iter()
                .map(|b| TypeSignature::Exact(vec![b.clone()]))
                .collect()
        };
        HistAgg {
            quantile,
            signature: Signature::one_of(sigs, Volatility::Immutable),
        }
    }
}

fn err(msg: String) -> DataFusionError {
    DataFusionError::Execution(msg)
}

/// The literal quantile argument.
fn quantile_arg(args: &AccumulatorArgs) -> Result<f64> {
    let expr = args
        .exprs
        .get(1)
        .ok_or_else(|| err("hist_quantile(hist, q) needs a quantile".into()))?;
    let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let q = match expr.evaluate(&empty) {
        Ok(ColumnarValue::Scalar(ScalarValue::Float64(Some(q)))) => q,
        Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(q)))) => q as f64,
        _ => {
            return Err(DataFusionError::Plan(
                "hist_quantile(hist, q): q must be a number literal between 0 and 1".into(),
            ))
        }
    };
    if !(0.0..=1.0).contains(&q) {
        return Err(DataFusionError::Plan(format!(
            "hist_quantile(hist, q): q must be between 0 and 1, not {q}"
        )));
    }
    Ok(q)
}

impl AggregateUDFImpl for HistAgg {
    fn name(&self) -> &str {
        if self.quantile {
            "hist_quantile"
        } else {
            "hist_merge"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(if self.quantile {
            DataType::Float64
        } else {
            DataType::Binary
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let quantile = if self.quantile {
            Some(quantile_arg(&args)?)
        } else {
            None
        };
        Ok(Box::new(HistAcc {
            quantile,
            sum: HistSum::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "hist"),
            DataType::Binary,
            true,
        ))])
    }
}

#[derive(Debug)]
struct HistAcc {
    quantile: Option<f64>,
    sum: HistSum,
}

impl HistAcc {
    fn add(&mut self, values: &ArrayRef) -> Result<()> {
        let add = |sum: &mut HistSum, v: Option<&[u8]>| match v {
            Some(b) => sum.add_encoded(b).map_err(|e| err(e.to_string())),
            None => Ok(()),
        };
        match values.data_type() {
            DataType::Binary => values
                .as_binary::<i32>()
                .iter()
                .try_for_each(|v| add(&mut self.sum, v)),
            DataType::LargeBinary => values
                .as_binary::<i64>()
                .iter()
                .try_for_each(|v| add(&mut self.sum, v)),
            DataType::BinaryView => values
                .as_binary_view()
                .iter()
                .try_for_each(|v| add(&mut self.sum, v)),
            DataType::Null => Ok(()),
            other => Err(err(format!("histogram aggregate over {other}"))),
        }
    }
}

impl Accumulator for HistAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match values.first() {
            Some(v) => self.add(v),
            None => Ok(()),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.sum.encode()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match self.quantile {
            Some(q) => ScalarValue::Float64(self.sum.quantile(q)),
            None => ScalarValue::Binary(Some(self.sum.encode())),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.sum.size()
    }
}
