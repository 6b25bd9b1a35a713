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

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "udf",
        pub_export_macro: true,
        export_macro_name: "export_udf",
        default_bindings_module: "quiver_udf::bindings",
        additional_derives: [PartialEq],
    });
}

mod column;
mod values;

pub use bindings::exports::quiver::udf::scalar::Guest;
pub use bindings::quiver::udf::types::{Column, RowError, SqlType, Values, VarBinary};
pub use column::{ColumnBuilder, ValueRef};
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

/// Exports ordinary Rust functions (and [`RawFunction`]s) as the Quiver
/// functions of this component. See the crate documentation.
#[macro_export]
macro_rules! functions {
    (
        $(
            $(#[$meta:meta])*
            fn $name:ident ( $( $arg:ident : $ty:ty ),* $(,)? ) -> $ret:ty $body:block
        )*
        $( @raw $raw_name:ident = $raw:ty; )*
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

            #[allow(unused_variables, unused_mut, unused_assignments)]
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

        $crate::bindings::export_udf!(__QuiverFunctions with_types_in $crate::bindings);
    };
}
