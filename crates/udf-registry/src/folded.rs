//! [`FoldedAggregateUdf`]: PostgreSQL's classic aggregates, `CREATE
//! AGGREGATE ... (SFUNC = ..., STYPE = ..., COMBINEFUNC = ..., FINALFUNC =
//! ..., INITCOND = ...)`, folding rows with Wasm scalar functions.
//!
//! The state of each group is a SQL value of type STYPE; it is also what
//! crosses stages. Each row's transition depends on the state the previous
//! row of its group left, so rows are folded in rounds: every round calls
//! SFUNC once, on a batch holding the next row of each group. Many groups
//! make few, large calls; one group (no `GROUP BY`) makes a call per row —
//! the price of PostgreSQL's form. An aggregate whose accumulator is a
//! component (`MODULE = ...`) makes one call per batch instead.
//!
//! PostgreSQL's semantics: with a STRICT SFUNC, rows with a null argument
//! are skipped and, without INITCOND, the first non-null value becomes the
//! state; a STRICT COMBINEFUNC keeps the non-null side; a STRICT FINALFUNC
//! gives null for a null state.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature,
    TypeSignature,
};

use crate::definition::{FunctionDef, Kind};
use crate::function::WasmFunction;
use crate::module_dir::ModuleDir;
use crate::types::SqlType;
use crate::udf::{coerce, resolve};
use crate::{Error, Result as QuiverResult};

/// The initial state: INITCOND converted to STYPE, or null.
pub(crate) fn initial_state(stype: SqlType, initcond: Option<&str>) -> QuiverResult<ScalarValue> {
    let Some(data_type) = stype.data_type() else {
        return Err(Error::InvalidFunction("STYPE cannot be anyelement".into()));
    };
    let Some(text) = initcond else {
        return ScalarValue::try_from(&data_type).map_err(|e| Error::Runtime(e.to_string()));
    };
    let array: ArrayRef = Arc::new(StringArray::from(vec![text]));
    let options = datafusion::arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    datafusion::arrow::compute::cast_with_options(&array, &data_type, &options)
        .and_then(|a| ScalarValue::try_from_array(&a, 0).map_err(Into::into))
        .map_err(|e| {
            Error::InvalidFunction(format!("invalid INITCOND '{text}' for type {stype}: {e}"))
        })
}

/// One overload of a classic aggregate with the functions it folds with.
#[derive(Debug, Clone)]
pub struct FoldedParts {
    pub aggregate: FunctionDef,
    pub sfunc: Arc<WasmFunction>,
    pub combinefunc: Arc<WasmFunction>,
    pub finalfunc: Option<Arc<WasmFunction>>,
}

impl FoldedParts {
    fn stype(&self) -> SqlType {
        match &self.aggregate.kind {
            Kind::Folded(f) => f.stype,
            _ => self.aggregate.returns,
        }
    }

    fn initcond(&self) -> Option<&str> {
        match &self.aggregate.kind {
            Kind::Folded(f) => f.initcond.as_deref(),
            _ => None,
        }
    }
}

/// Every overload of one classic aggregate name.
#[derive(Debug)]
pub struct FoldedAggregateUdf {
    name: String,
    overloads: Vec<FoldedParts>,
    /// The aggregates' own definitions, for overload resolution.
    shells: Vec<Arc<WasmFunction>>,
    modules: Option<ModuleDir>,
    signature: Signature,
}

impl FoldedAggregateUdf {
    /// The DataFusion aggregate for `overloads` (all of one name); `shells`
    /// are the aggregates' own registry entries, in the same order.
    pub fn new_udaf(
        name: &str,
        overloads: Vec<FoldedParts>,
        shells: Vec<Arc<WasmFunction>>,
        modules: Option<ModuleDir>,
    ) -> AggregateUDF {
        AggregateUDF::new_from_impl(Self {
            name: name.to_string(),
            signature: Signature::new(
                TypeSignature::UserDefined,
                datafusion::logical_expr::Volatility::Immutable,
            ),
            overloads,
            shells,
            modules,
        })
    }

    pub fn overloads(&self) -> &[FoldedParts] {
        &self.overloads
    }

    pub fn module_dir(&self) -> Option<&ModuleDir> {
        self.modules.as_ref()
    }

    fn parts(&self, types: &[DataType]) -> Result<(&FoldedParts, Vec<SqlType>)> {
        let (shell, args) = resolve(&self.name, &self.shells, types)?;
        let index = self
            .shells
            .iter()
            .position(|s| Arc::ptr_eq(s, shell))
            .unwrap_or_default();
        Ok((&self.overloads[index], args))
    }

    fn groups(&self, args: &AccumulatorArgs) -> Result<Folder> {
        let types: Vec<DataType> = args
            .expr_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let (parts, arg_types) = self.parts(&types)?;
        Folder::new(parts.clone(), arg_types)
    }
}

impl PartialEq for FoldedAggregateUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.overloads.len() == other.overloads.len()
            && self
                .overloads
                .iter()
                .zip(&other.overloads)
                .all(|(a, b)| a.aggregate == b.aggregate && a.sfunc.def() == b.sfunc.def())
    }
}

impl Eq for FoldedAggregateUdf {}

impl Hash for FoldedAggregateUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        for o in &self.overloads {
            o.aggregate.hash(state);
        }
    }
}

impl AggregateUDFImpl for FoldedAggregateUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(&self.name, &self.shells, arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let (parts, _) = self.parts(arg_types)?;
        match parts.aggregate.returns.data_type() {
            Some(t) => Ok(t),
            None => exec_err!("{} has no concrete return type", self.name),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct {
            return datafusion::common::not_impl_err!(
                "{}(DISTINCT ...) is not supported for aggregates built with SFUNC",
                self.name
            );
        }
        Ok(Box::new(OneFold(self.groups(&args)?)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let types: Vec<DataType> = args
            .input_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let (parts, _) = self.parts(&types)?;
        let Some(t) = parts.stype().data_type() else {
            return exec_err!("STYPE of {} is not concrete", self.name);
        };
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "state"),
            t,
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
        Ok(Box::new(self.groups(&args)?))
    }
}

/// The states of every group, folded with the aggregate's functions.
#[derive(Debug)]
struct Folder {
    parts: FoldedParts,
    args: Vec<SqlType>,
    stype: SqlType,
    initial: ScalarValue,
    states: Vec<ScalarValue>,
}

impl Folder {
    fn new(parts: FoldedParts, args: Vec<SqlType>) -> Result<Self> {
        let stype = parts.stype();
        let initial = initial_state(stype, parts.initcond())?;
        Ok(Self {
            parts,
            args,
            stype,
            initial,
            states: Vec::new(),
        })
    }

    fn grow(&mut self, groups: usize) {
        if self.states.len() < groups {
            self.states.resize(groups, self.initial.clone());
        }
    }

    /// Folds `rows` (row index, group) of `values` into the states with
    /// `function(state, values...)`; `strict` as the function is.
    fn fold(
        &mut self,
        function: &WasmFunction,
        values: &[ArrayRef],
        types: &[SqlType],
        rows: Vec<(usize, usize)>,
    ) -> Result<()> {
        let strict = function.def().strict;
        // Round r holds the r-th remaining row of each group.
        let mut rounds: Vec<Vec<(usize, usize)>> = Vec::new();
        let mut seen = vec![0usize; self.states.len()];
        for (row, group) in rows {
            if strict && values.iter().any(|v| v.is_null(row)) {
                continue;
            }
            let round = seen[group];
            seen[group] += 1;
            if rounds.len() <= round {
                rounds.push(Vec::new());
            }
            rounds[round].push((row, group));
        }
        let state_type = self.stype;
        let arg_types: Vec<SqlType> = std::iter::once(state_type)
            .chain(types.iter().copied())
            .collect();
        for round in rounds {
            let mut calls = Vec::with_capacity(round.len());
            for (row, group) in round {
                if strict && self.states[group].is_null() {
                    // The first value becomes the state (types checked at CREATE).
                    let value = ScalarValue::try_from_array(&values[0], row)?;
                    self.states[group] =
                        value.cast_to(&state_type.data_type().unwrap_or(DataType::Null))?;
                } else {
                    calls.push((row, group));
                }
            }
            if calls.is_empty() {
                continue;
            }
            let states =
                ScalarValue::iter_to_array(calls.iter().map(|(_, g)| self.states[*g].clone()))?;
            let indices = datafusion::arrow::array::UInt32Array::from_iter_values(
                calls.iter().map(|(r, _)| *r as u32),
            );
            let mut columns = vec![states];
            for v in values {
                columns.push(datafusion::arrow::compute::take(v, &indices, None)?);
            }
            let result = function.invoke(&columns, &arg_types, calls.len())?;
            for (i, (_, group)) in calls.iter().enumerate() {
                self.states[*group] = ScalarValue::try_from_array(&result, i)?;
            }
        }
        Ok(())
    }

    fn update(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total: usize,
    ) -> Result<()> {
        self.grow(total);
        let rows = group_indices
            .iter()
            .enumerate()
            .filter(|(row, _)| opt_filter.is_none_or(|f| f.is_valid(*row) && f.value(*row)))
            .map(|(row, group)| (row, *group))
            .collect();
        let sfunc = self.parts.sfunc.clone();
        let types = self.args.clone();
        self.fold(&sfunc, values, &types, rows)
    }

    fn merge(&mut self, states: &[ArrayRef], group_indices: &[usize], total: usize) -> Result<()> {
        self.grow(total);
        let combine = self.parts.combinefunc.clone();
        let state = self.stype;
        let rows = group_indices.iter().copied().enumerate().collect();
        // A STRICT COMBINEFUNC keeps the non-null side: `fold` skips null
        // other states and adopts the other state where this one is null.
        self.fold(&combine, &states[..1], &[state], rows)
    }

    /// The results of the first `n` groups, without changing the states.
    fn results(&self, n: usize) -> Result<ArrayRef> {
        let states = self.state_array(n)?;
        match &self.parts.finalfunc {
            None => Ok(states),
            Some(finalfunc) => Ok(finalfunc.invoke(&[states], &[self.stype], n)?),
        }
    }

    fn state_array(&self, n: usize) -> Result<ArrayRef> {
        let Some(t) = self.stype.data_type() else {
            return exec_err!("STYPE is not concrete");
        };
        if n == 0 {
            return Ok(datafusion::arrow::array::new_empty_array(&t));
        }
        let array = ScalarValue::iter_to_array(self.states[..n].iter().cloned())?;
        Ok(if array.data_type() == &t {
            array
        } else {
            cast(&array, &t)?
        })
    }

    fn emitted(&mut self, emit_to: EmitTo) -> usize {
        match emit_to {
            EmitTo::All => self.states.len(),
            EmitTo::First(n) => n.min(self.states.len()),
        }
    }
}

impl GroupsAccumulator for Folder {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.update(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = self.emitted(emit_to);
        let results = self.results(n)?;
        self.states.drain(..n);
        Ok(results)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let n = self.emitted(emit_to);
        let states = self.state_array(n)?;
        self.states.drain(..n);
        Ok(vec![states])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.merge(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |v| v.len());
        let mut each = Folder::new(self.parts.clone(), self.args.clone())?;
        let groups: Vec<usize> = (0..rows).collect();
        each.update(values, &groups, opt_filter, rows)?;
        Ok(vec![each.state_array(rows)?])
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.states.iter().map(ScalarValue::size).sum::<usize>()
    }
}

/// A query without `GROUP BY`, or a window: group 0 of a [`Folder`].
#[derive(Debug)]
struct OneFold(Folder);

impl Accumulator for OneFold {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.0.update(values, &vec![0; rows], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.grow(1);
        ScalarValue::try_from_array(&self.0.results(1)?, 0)
    }

    fn size(&self) -> usize {
        self.0.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.grow(1);
        Ok(vec![self.0.states[0].clone()])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states.first().map_or(0, |v| v.len());
        self.0.merge(states, &vec![0; rows], 1)
    }
}
