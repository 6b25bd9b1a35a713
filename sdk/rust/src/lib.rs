//! Write Quiver SQL functions in Rust.
//!
//! ```ignore
//! quiver_udf::functions! {
//!     /// Greatest common divisor.
//!     fn gcd(a: i64, b: i64) -> i64 {
//!         let (mut a, mut b) = (a.abs(), b.abs());
//!         while b != 0 { (a, b) = (b, a % b); }
//!         a
//!     }
//!
//!     fn shout(s: Option<&str>) -> Option<String> {
//!         s.map(|s| s.to_uppercase())
//!     }
//! }
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and register each function:
//!
//! ```sql
//! CREATE FUNCTION gcd(bigint, bigint) RETURNS bigint LANGUAGE wasm IMMUTABLE
//!     AS 'my_functions.wasm', 'gcd';
//! ```
//!
//! Argument and result types map to SQL types: `bool` boolean, `i8` tinyint,
//! `i16` smallint, `i32` integer, `i64` bigint, `f32` real, `f64` double
//! precision, `&str`/`String` text, `&[u8]`/`Vec<u8>` bytea, [`Date`] date,
//! [`Timestamp`] timestamp, [`Decimal<S>`] numeric(38, S). `Option<T>` takes
//! or returns null; a function whose arguments are not `Option` is not
//! called for rows with a null argument (the result is null). Returning
//! `Result<T, E>` reports `Err` as a row error: the query fails with the
//! row and message.
//!
//! Functions are called once per batch of rows, never once per row across
//! the host/guest boundary: the loop over rows runs inside the component.
//! For polymorphic functions (`anyelement`), implement [`RawFunction`] and
//! list it after the ordinary functions with `@raw name = Type;`.
//!
//! ## Aggregates
//!
//! An aggregate is a state type implementing [`Aggregate`], listed with
//! `@aggregate name(args) = State;` after the functions:
//!
//! ```ignore
//! #[derive(Default)]
//! struct Total(f64);
//!
//! impl quiver_udf::Aggregate for Total {
//!     type Input<'a> = f64;          // one argument; a tuple for several
//!     type Output = f64;
//!     fn update(&mut self, x: f64) { self.0 += x }
//!     fn merge(&mut self, other: Self) { self.0 += other.0 }
//!     fn finish(&self) -> f64 { self.0 }
//!     fn save(&self, out: &mut Vec<u8>) { out.extend_from_slice(&self.0.to_le_bytes()) }
//!     fn load(bytes: &[u8]) -> Result<Self, String> {
//!         Ok(Total(f64::from_le_bytes(bytes.try_into().map_err(|_| "bad state")?)))
//!     }
//! }
//!
//! quiver_udf::functions! {
//!     @aggregate total(x: f64) = Total;
//! }
//! ```
//!
//! registered with `CREATE AGGREGATE total(double precision) (MODULE =
//! 'my_functions.wasm')`. Rows with a null argument are skipped unless the
//! argument is an `Option`. Each group starts as `Default::default()`;
//! `save`/`load` carry a state between stages and machines, so keep it
//! compact.
//!
//! ## Table functions
//!
//! A table function returns an iterator of rows (tuples, one element per
//! column), listed with `@table`:
//!
//! ```ignore
//! quiver_udf::functions! {
//!     @table series(start: i64, stop: i64) -> (n: i64) {
//!         (start..=stop).map(|n| (n,))
//!     }
//! }
//! ```
//!
//! registered with `CREATE FUNCTION series(bigint, bigint) RETURNS TABLE (n
//! bigint) LANGUAGE wasm AS 'my_functions.wasm', 'series'`. Rows are pulled
//! a batch at a time as the query needs them, so the iterator may be
//! endless. It must own what it uses: copy text arguments (`s.to_owned()`).
//! A null argument (unless an `Option`) gives no rows.
//!
//! ## Transforms
//!
//! A transform takes a relation and returns one (`SELECT * FROM
//! sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, 1800)`): a type
//! implementing [`Transform`], listed with `@transform` after everything
//! else:
//!
//! ```ignore
//! quiver_udf::functions! {
//!     @transform sessionize = Sessionize;
//! }
//! ```
//!
//! registered with `CREATE FUNCTION sessionize(TABLE, bigint) RETURNS TABLE
//! LANGUAGE wasm AS 'my_functions.wasm', 'sessionize'`. [`Transform::describe`]
//! gives the output's columns for the input's (asked when a query is
//! planned); each partition — a `PARTITION BY` key's rows in `ORDER BY`
//! order — is a value of the type, made by [`Transform::start`], fed
//! batches of [`Rows`] by [`Transform::push`] and ended by
//! [`Transform::finish`], each writing what it produces into [`Output`].
//! A [`ColumnarTransform`] (`@columnar_transform`) gets and returns whole
//! batches in Arrow's layout instead.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "udf-transforms",
        pub_export_macro: true,
        export_macro_name: "export_udf",
        default_bindings_module: "quiver_udf::bindings",
        additional_derives: [PartialEq],
    });
}

/// Key-value buckets, through `wasi:keyvalue` (its 0.2.0 draft, which
/// wasmtime implements): a function opens only the buckets its definition
/// grants (`CREATE FUNCTION ... SET quiver.wasm.keyvalue = 'rates:read,
/// hits:read-write'`); any other `open` fails with
/// [`Error::AccessDenied`](keyvalue::Error::AccessDenied), and so does a
/// write without `read-write`. An `Err` returned from the function is the
/// row error its query fails with.
///
/// ```ignore
/// use quiver_udf::keyvalue::{describe, open};
///
/// fn to_usd(amount: f64, currency: &str) -> Result<f64, String> {
///     let rates = open("rates").map_err(|e| describe(&e))?;
///     let rate = rates.get(currency).map_err(|e| describe(&e))?;
///     ...
/// }
/// ```
///
/// Values are bytes; counters ([`increment`](keyvalue::increment)) are
/// kept as decimal text. A call reads the bucket as it was when the call
/// began (a query run by the cluster: when it was planned), plus its own
/// writes.
pub mod keyvalue {
    mod bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "wasi:keyvalue/imports@0.2.0-draft",
        });
    }

    pub use bindings::wasi::keyvalue::atomics::increment;
    pub use bindings::wasi::keyvalue::batch::{delete_many, get_many, set_many};
    pub use bindings::wasi::keyvalue::store::{Bucket, Error, KeyResponse, open};

    /// What went wrong, in words: `access denied`, `no such bucket`, or
    /// the host's message.
    pub fn describe(error: &Error) -> String {
        match error {
            Error::NoSuchStore => "no such bucket".into(),
            Error::AccessDenied => "access denied".into(),
            Error::Other(message) => message.clone(),
        }
    }
}

mod aggregate;
mod column;
mod table;
mod transform;
mod values;

pub use aggregate::{Aggregate, Groups, Update};
#[doc(hidden)]
pub use aggregate::group_of;
#[doc(hidden)]
pub use aggregate::AccumulatorImpl;
#[doc(hidden)]
pub use bindings::exports::quiver::udf::aggregate::{
    Accumulator as AccumulatorHandle, Guest as AggregateGuest,
};
pub use bindings::exports::quiver::udf::scalar::Guest;
#[doc(hidden)]
pub use bindings::exports::quiver::udf::table::{Guest as TableGuest, Rows as RowsHandle};
pub use bindings::quiver::udf::types::{Column, RowError, SqlType, Values, VarBinary};
pub use column::{ColumnBuilder, ValueRef};
#[doc(hidden)]
pub use column::valid_rows;
#[doc(hidden)]
pub use table::RowsImpl;
#[doc(hidden)]
pub use bindings::exports::quiver::udf::transform::{
    Guest as TransformGuest, Partition as PartitionHandle,
};
#[doc(hidden)]
pub use transform::PartitionImpl;
pub use transform::{
    Batch, ColumnarTransform, Field, Output, Rows, Transform, constant, position,
};
pub use values::{Arg, ArgReader, Date, Decimal, Ret, Timestamp};

/// A function that works on whole columns: for polymorphic functions, or
/// when the per-row API is not enough.
pub trait RawFunction {
    /// The type the function returns for these argument types, or why it
    /// does not accept them.
    fn return_type(args: &[SqlType]) -> Result<SqlType, String>;
    /// The result column for `rows` rows of `args`.
    fn call(args: &[Column], rows: usize) -> Result<Column, RowError>;
}

#[doc(hidden)]
pub fn check_args(name: &str, got: &[SqlType], accepts: &[fn(&SqlType) -> bool]) -> Result<(), String> {
    if got.len() != accepts.len() {
        return Err(format!(
            "{name} takes {} arguments, not {}",
            accepts.len(),
            got.len()
        ));
    }
    for (i, (t, ok)) in got.iter().zip(accepts).enumerate() {
        if !ok(t) {
            return Err(format!("argument {} of {name} cannot be {t:?}", i + 1));
        }
    }
    Ok(())
}

#[doc(hidden)]
pub fn arg<'a>(args: &'a [Column], index: usize, rows: usize) -> Result<&'a Column, RowError> {
    match args.get(index) {
        Some(c) if c.len() == rows => Ok(c),
        _ => Err(RowError {
            row: 0,
            message: format!("argument {} is missing or has the wrong length", index + 1),
        }),
    }
}

/// Exports ordinary Rust functions (and [`RawFunction`]s), aggregates and
/// table functions as the Quiver functions of this component. See the
/// crate documentation.
#[macro_export]
macro_rules! functions {
    (
        $(
            $(#[$meta:meta])*
            fn $name:ident ( $( $arg:ident : $ty:ty ),* $(,)? ) -> $ret:ty $body:block
        )*
        $( @raw $raw_name:ident = $raw:ty; )*
        $(
            @aggregate $agg_name:ident ( $( $agg_arg:ident : $agg_ty:ty ),* $(,)? ) = $state:ty;
        )*
        $(
            @table $table_name:ident ( $( $table_arg:ident : $table_ty:ty ),* $(,)? )
                -> ( $( $column:ident : $column_ty:ty ),+ $(,)? ) $table_body:block
        )*
        $( @transform $transform_name:ident = $transform:ty; )*
        $( @columnar_transform $columnar_name:ident = $columnar:ty; )*
    ) => {
        $(
            $(#[$meta])*
            fn $name( $( $arg: $ty ),* ) -> $ret $body
        )*

        struct __QuiverFunctions;

        impl $crate::Guest for __QuiverFunctions {
            fn functions() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![ $( stringify!($name).to_string(), )* $( stringify!($raw_name).to_string(), )* ]
            }

            fn return_type(
                name: ::std::string::String,
                args: ::std::vec::Vec<$crate::SqlType>,
            ) -> ::std::result::Result<$crate::SqlType, ::std::string::String> {
                match name.as_str() {
                    $(
                        stringify!($name) => {
                            $crate::check_args(
                                stringify!($name),
                                &args,
                                &[ $( <$ty as $crate::Arg<'_>>::accepts ),* ],
                            )?;
                            Ok(<$ret as $crate::Ret>::sql_type())
                        }
                    )*
                    $( stringify!($raw_name) => <$raw as $crate::RawFunction>::return_type(&args), )*
                    other => Err(format!("this component has no function {other}")),
                }
            }

            #[allow(unused_variables, unused_mut, unused_assignments, irrefutable_let_patterns)]
            fn call(
                name: ::std::string::String,
                args: ::std::vec::Vec<$crate::Column>,
                rows: u32,
            ) -> ::std::result::Result<$crate::Column, $crate::RowError> {
                let rows = rows as usize;
                match name.as_str() {
                    $(
                        stringify!($name) => {
                            let mut index = 0usize;
                            $(
                                let $arg = $crate::ArgReader::<$ty>::new($crate::arg(&args, index, rows)?);
                                index += 1;
                            )*
                            // A fixed-width result: one loop over the batch
                            // writing the result's values, nulls from the
                            // arguments' bitmaps.
                            if <$ret as $crate::Ret>::DENSE {
                                if let ( $( Some($arg), )* ) = ( $( $arg.narrow(rows), )* ) {
                                    let validity = $crate::valid_rows(&[ $( $arg.required() ),* ], rows);
                                    if let Some(column) = <$ret as $crate::Ret>::collect(
                                        rows,
                                        validity,
                                        |row| $name( $( $arg.get(row) ),* ),
                                    ) {
                                        return Ok(column);
                                    }
                                }
                            }
                            let mut out = $crate::ColumnBuilder::new(<$ret as $crate::Ret>::sql_type(), rows);
                            for row in 0..rows {
                                if false $( || $arg.skips(row) )* {
                                    out.push_null();
                                    continue;
                                }
                                let value: $ret = $name( $( $arg.get(row) ),* );
                                $crate::Ret::push(value, &mut out).map_err(|message| $crate::RowError {
                                    row: row as u32,
                                    message,
                                })?;
                            }
                            Ok(out.finish())
                        }
                    )*
                    $( stringify!($raw_name) => <$raw as $crate::RawFunction>::call(&args, rows), )*
                    other => Err($crate::RowError { row: 0, message: format!("this component has no function {other}") }),
                }
            }
        }

        impl $crate::AggregateGuest for __QuiverFunctions {
            type Accumulator = $crate::AccumulatorImpl;

            fn aggregates() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![ $( stringify!($agg_name).to_string(), )* ]
            }

            fn return_type(
                name: ::std::string::String,
                args: ::std::vec::Vec<$crate::SqlType>,
            ) -> ::std::result::Result<$crate::SqlType, ::std::string::String> {
                match name.as_str() {
                    $(
                        stringify!($agg_name) => {
                            $crate::check_args(
                                stringify!($agg_name),
                                &args,
                                &[ $( <$agg_ty as $crate::Arg<'_>>::accepts ),* ],
                            )?;
                            Ok(<<$state as $crate::Aggregate>::Output as $crate::Ret>::sql_type())
                        }
                    )*
                    other => Err(format!("this component has no aggregate {other}")),
                }
            }

            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn create(
                name: ::std::string::String,
                args: ::std::vec::Vec<$crate::SqlType>,
            ) -> ::std::result::Result<$crate::AccumulatorHandle, ::std::string::String> {
                match name.as_str() {
                    $(
                        stringify!($agg_name) => {
                            $crate::check_args(
                                stringify!($agg_name),
                                &args,
                                &[ $( <$agg_ty as $crate::Arg<'_>>::accepts ),* ],
                            )?;
                            let update: $crate::Update<$state> = |states, groups, args, rows| {
                                let mut index = 0usize;
                                $(
                                    let $agg_arg = $crate::ArgReader::<$agg_ty>::new($crate::arg(args, index, rows)?);
                                    index += 1;
                                )*
                                // Every row in group 0: one state, one loop.
                                if groups.is_empty() {
                                    if let (Some(state), $( Some($agg_arg), )*) =
                                        (states.first_mut(), $( $agg_arg.narrow(rows), )*)
                                    {
                                        for row in 0..rows {
                                            if false $( || $agg_arg.skips(row) )* {
                                                continue;
                                            }
                                            $crate::Aggregate::update(state, ( $( $agg_arg.get(row) ),* ));
                                        }
                                        return Ok(());
                                    }
                                }
                                for row in 0..rows {
                                    if false $( || $agg_arg.skips(row) )* {
                                        continue;
                                    }
                                    let group = $crate::group_of(groups, row, states.len())?;
                                    $crate::Aggregate::update(&mut states[group], ( $( $agg_arg.get(row) ),* ));
                                }
                                Ok(())
                            };
                            Ok($crate::AccumulatorHandle::new($crate::AccumulatorImpl::new(
                                $crate::Groups::<$state>::new(update),
                            )))
                        }
                    )*
                    other => Err(format!("this component has no aggregate {other}")),
                }
            }
        }

        impl $crate::TableGuest for __QuiverFunctions {
            type Rows = $crate::RowsImpl;

            fn tables() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![ $( stringify!($table_name).to_string(), )* ]
            }

            fn columns(
                name: ::std::string::String,
                args: ::std::vec::Vec<$crate::SqlType>,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::SqlType>, ::std::string::String> {
                match name.as_str() {
                    $(
                        stringify!($table_name) => {
                            $crate::check_args(
                                stringify!($table_name),
                                &args,
                                &[ $( <$table_ty as $crate::Arg<'_>>::accepts ),* ],
                            )?;
                            Ok(::std::vec![ $( <$column_ty as $crate::Ret>::sql_type() ),+ ])
                        }
                    )*
                    other => Err(format!("this component has no table function {other}")),
                }
            }

            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn start(
                name: ::std::string::String,
                args: ::std::vec::Vec<$crate::Column>,
            ) -> ::std::result::Result<$crate::RowsHandle, ::std::string::String> {
                match name.as_str() {
                    $(
                        stringify!($table_name) => {
                            let mut index = 0usize;
                            $(
                                let $table_arg = $crate::ArgReader::<$table_ty>::new(
                                    $crate::arg(&args, index, 1).map_err(|e| e.message)?,
                                );
                                index += 1;
                            )*
                            let types = ::std::vec![ $( <$column_ty as $crate::Ret>::sql_type() ),+ ];
                            if false $( || $table_arg.skips(0) )* {
                                return Ok($crate::RowsHandle::new($crate::RowsImpl::new(
                                    ::std::iter::empty::<( $( $column_ty, )+ )>(),
                                    types,
                                    |_, _| Ok(()),
                                )));
                            }
                            $( let $table_arg: $table_ty = $table_arg.get(0); )*
                            let rows = $table_body;
                            Ok($crate::RowsHandle::new($crate::RowsImpl::new(
                                rows,
                                types,
                                |row: ( $( $column_ty, )+ ), out: &mut [$crate::ColumnBuilder]| {
                                    let ( $( $column, )+ ) = row;
                                    let mut index = 0usize;
                                    $(
                                        $crate::Ret::push($column, &mut out[index])?;
                                        index += 1;
                                    )+
                                    Ok(())
                                },
                            )))
                        }
                    )*
                    other => Err(format!("this component has no table function {other}")),
                }
            }
        }

        impl $crate::TransformGuest for __QuiverFunctions {
            type Partition = $crate::PartitionImpl;

            fn transforms() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![
                    $( stringify!($transform_name).to_string(), )*
                    $( stringify!($columnar_name).to_string(), )*
                ]
            }

            fn describe(
                name: ::std::string::String,
                input: ::std::vec::Vec<$crate::Field>,
                args: ::std::vec::Vec<$crate::Column>,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::Field>, ::std::string::String> {
                match name.as_str() {
                    $( stringify!($transform_name) => <$transform as $crate::Transform>::describe(&input, &args), )*
                    $( stringify!($columnar_name) => <$columnar as $crate::ColumnarTransform>::describe(&input, &args), )*
                    other => Err(format!("this component has no transform {other}")),
                }
            }

            fn start(
                name: ::std::string::String,
                input: ::std::vec::Vec<$crate::Field>,
                args: ::std::vec::Vec<$crate::Column>,
            ) -> ::std::result::Result<$crate::PartitionHandle, ::std::string::String> {
                match name.as_str() {
                    $(
                        stringify!($transform_name) => Ok($crate::PartitionHandle::new(
                            $crate::PartitionImpl::start::<$transform>(&input, &args)?,
                        )),
                    )*
                    $(
                        stringify!($columnar_name) => Ok($crate::PartitionHandle::new(
                            $crate::PartitionImpl::start_columnar::<$columnar>(&input, &args)?,
                        )),
                    )*
                    other => Err(format!("this component has no transform {other}")),
                }
            }
        }

        $crate::bindings::export_udf!(__QuiverFunctions with_types_in $crate::bindings);
    };
}
