//! [`WasmAggregateUdf`]: a Wasm aggregate name, with all its overloads, as
//! a DataFusion aggregate function.
//!
//! DataFusion runs an aggregate as a `GroupsAccumulator` (one per partition,
//! all groups in it) wherever it can: that is one Wasm call per batch
//! whatever the number of groups. Queries without `GROUP BY`, window
//! functions and `DISTINCT` use a one-group [`Accumulator`]. Either way the
//! state that crosses stages (and machines) is the component's serialized
//! state, one `bytea` value per group.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{filter, prep_null_mask_filter};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature,
    TypeSignature,
};

use crate::function::{Accumulator as WasmAccumulator, WasmFunction};
use crate::module_dir::ModuleDir;
use crate::types::SqlType;
use crate::udf::{coerce, hash_overloads, resolve, return_data_type, same_overloads, volatility};

/// Every overload of one Wasm aggregate name.
#[derive(Debug)]
pub struct WasmAggregateUdf {
    name: String,
    overloads: Vec<Arc<WasmFunction>>,
    /// Where other processes read the modules (travels with the plan).
    modules: Option<ModuleDir>,
    signature: Signature,
}

impl WasmAggregateUdf {
    /// The DataFusion aggregate for `overloads` (all of one name), whose
    /// modules other processes read from `modules`.
    pub fn new_udaf(
        name: &str,
        overloads: Vec<Arc<WasmFunction>>,
        modules: Option<ModuleDir>,
    ) -> AggregateUDF {
        AggregateUDF::new_from_impl(Self {
            name: name.to_string(),
            signature: Signature::new(
                TypeSignature::UserDefined,
                volatility(&overloads).datafusion(),
            ),
            overloads,
            modules,
        })
    }

    /// Where other processes read the modules.
    pub fn module_dir(&self) -> Option<&ModuleDir> {
        self.modules.as_ref()
    }

    /// The overloads, in signature order.
    pub fn overloads(&self) -> &[Arc<WasmFunction>] {
        &self.overloads
    }

    /// The overload these arguments call and their SQL types.
    fn resolve_fields(&self, fields: &[FieldRef]) -> Result<(&Arc<WasmFunction>, Vec<SqlType>)> {
        let types: Vec<DataType> = fields.iter().map(|f| f.data_type().clone()).collect();
        resolve(&self.name, &self.overloads, &types)
    }

    fn accumulator_for(&self, args: &AccumulatorArgs) -> Result<WasmAccumulator> {
        let (f, types) = self.resolve_fields(args.expr_fields)?;
        Ok(f.accumulator(&types)?)
    }
}

impl PartialEq for WasmAggregateUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && same_overloads(&self.overloads, &other.overloads)
    }
}

impl Eq for WasmAggregateUdf {}

impl Hash for WasmAggregateUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        hash_overloads(&self.overloads, state);
    }
}

impl AggregateUDFImpl for WasmAggregateUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(&self.name, &self.overloads, arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        return_data_type(&self.name, &self.overloads, arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (f, types) = self.resolve_fields(args.expr_fields)?;
        if args.is_distinct {
            return Ok(Box::new(DistinctGroup::new(f.clone(), types)?));
        }
        Ok(Box::new(OneGroup {
            acc: self.accumulator_for(&args)?,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if args.is_distinct {
            // The distinct argument rows seen so far, in Arrow's row format.
            let item = Field::new_list_field(DataType::Binary, true);
            return Ok(vec![Arc::new(Field::new(
                format_state_name(args.name, "distinct rows"),
                DataType::List(Arc::new(item)),
                true,
            ))]);
        }
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "state"),
            DataType::Binary,
            true,
        ))])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(ManyGroups {
            acc: self.accumulator_for(&args)?,
            groups: 0,
        }))
    }
}

/// The accumulator of a query without `GROUP BY`, or of a window: group 0.
#[derive(Debug)]
struct OneGroup {
    acc: WasmAccumulator,
}

impl Accumulator for OneGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values.first().map_or(0, |v| v.len());
        if rows > 0 {
            self.acc.update(&[], 1, values, rows)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let result = self.acc.finish(1)?;
        ScalarValue::try_from_array(&result, 0)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.acc.memory()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let state = self.acc.state(1)?;
        Ok(vec![ScalarValue::Binary(Some(state.value(0).to_vec()))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(states) = states.first() else {
            return Ok(());
        };
        if !states.is_empty() {
            self.acc.merge(&[], 1, states.as_binary::<i32>())?;
        }
        Ok(())
    }
}

/// The accumulator of a `GROUP BY` query: every group of a partition in
/// one component instance, one call per batch.
struct ManyGroups {
    acc: WasmAccumulator,
    /// How many groups the accumulator has.
    groups: usize,
}

impl ManyGroups {
    fn emitted(&self, emit_to: EmitTo) -> usize {
        match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n.min(self.groups),
        }
    }

    /// Forgets the groups just emitted.
    fn emit(&mut self, n: usize) -> Result<()> {
        self.acc.remove(n)?;
        self.groups -= n;
        Ok(())
    }
}

/// The rows `filter` keeps (all when there is none): arrays and group ids.
fn keep(
    values: &[ArrayRef],
    group_indices: &[usize],
    opt_filter: Option<&BooleanArray>,
) -> Result<(Vec<ArrayRef>, Vec<u32>)> {
    let Some(mask) = opt_filter else {
        return Ok((
            values.to_vec(),
            group_indices.iter().map(|g| *g as u32).collect(),
        ));
    };
    let mask = if mask.null_count() > 0 {
        prep_null_mask_filter(mask)
    } else {
        mask.clone()
    };
    let values = values
        .iter()
        .map(|v| filter(v, &mask))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let groups = group_indices
        .iter()
        .zip(mask.values().iter())
        .filter(|(_, keep)| *keep)
        .map(|(g, _)| *g as u32)
        .collect();
    Ok((values, groups))
}

impl GroupsAccumulator for ManyGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let (values, groups) = keep(values, group_indices, opt_filter)?;
        self.groups = self.groups.max(total_num_groups);
        self.acc
            .update(&groups, self.groups, &values, groups.len())?;
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = self.emitted(emit_to);
        let result = self.acc.finish(n)?;
        self.emit(n)?;
        Ok(result)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let n = self.emitted(emit_to);
        let states = self.acc.state(n)?;
        self.emit(n)?;
        Ok(vec![Arc::new(states)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let groups: Vec<u32> = group_indices.iter().map(|g| *g as u32).collect();
        self.groups = self.groups.max(total_num_groups);
        let Some(states) = values.first() else {
            return Ok(());
        };
        self.acc
            .merge(&groups, self.groups, states.as_binary::<i32>())?;
        Ok(())
    }

    /// Each row as a group of its own (when partial aggregation does not
    /// pay): row `i`'s state is that of a group holding only row `i`, or
    /// an empty group where `opt_filter` drops the row.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |v| v.len());
        let mut acc = self.acc.function().accumulator(self.acc.args())?;
        let each: Vec<usize> = (0..rows).collect();
        let (values, groups) = keep(values, &each, opt_filter)?;
        acc.update(&groups, rows, &values, groups.len())?;
        Ok(vec![Arc::new(acc.state(rows)?)])
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.acc.memory()
    }
}

/// `agg(DISTINCT ...)`: the distinct argument rows are collected on the
/// host (and merged across stages as a list), and the component sees each
/// once when the result is asked for.
#[derive(Debug)]
struct DistinctGroup {
    function: Arc<WasmFunction>,
    types: Vec<SqlType>,
    converter: RowConverter,
    rows: HashSet<OwnedRow>,
}

impl DistinctGroup {
    fn new(function: Arc<WasmFunction>, types: Vec<SqlType>) -> Result<Self> {
        let fields = types
            .iter()
            .map(|t| match t.data_type() {
                Some(t) => Ok(SortField::new(t)),
                None => exec_err!("anyelement needs a concrete argument type"),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            function,
            types,
            converter: RowConverter::new(fields)?,
            rows: HashSet::new(),
        })
    }
}

impl Accumulator for DistinctGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = self.converter.convert_columns(values)?;
        self.rows.extend(rows.iter().map(|r| r.owned()));
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut acc = self.function.accumulator(&self.types)?;
        if !self.rows.is_empty() {
            let columns = self
                .converter
                .convert_rows(self.rows.iter().map(|r| r.row()))?;
            acc.update(&[], 1, &columns, self.rows.len())?;
        }
        ScalarValue::try_from_array(&acc.finish(1)?, 0)
    }

    fn size(&self) -> usize {
        size_of::<Self>()
            + self.converter.size()
            + self
                .rows
                .iter()
                .map(|r| r.as_ref().len() + size_of::<OwnedRow>())
                .sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<Option<&[u8]>> = self.rows.iter().map(|r| Some(r.as_ref())).collect();
        let items: ArrayRef = Arc::new(datafusion::arrow::array::BinaryArray::from(values));
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Binary, true)),
            OffsetBuffer::from_lengths([items.len()]),
            items,
            None,
        );
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(lists) = states.first() else {
            return Ok(());
        };
        let parser = self.converter.parser();
        for list in lists.as_list::<i32>().iter().flatten() {
            for bytes in list.as_binary::<i32>().iter().flatten() {
                self.rows.insert(parser.parse(bytes).owned());
            }
        }
        Ok(())
    }
}
