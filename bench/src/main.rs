//! `SELECT sum(f(x)) FROM t` over 10 M rows: Wasm component functions,
//! core-module functions and native DataFusion expressions; Wasm aggregates
//! against DataFusion's (grouped and not); a Wasm table function against
//! `generate_series`. In one process (no network, no Ballista), so the
//! figures are the functions' cost.
//!
//! Usage: `cargo run --release -p quiver-bench -- [GUEST_DIR] [ROWS] [GROUP...]`
//! (GUEST_DIR defaults to what `./dev guests` prints; the groups are
//! `numeric`, `string`, `aggregate`, `table` and `calls`, all by default).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::Operator;
use datafusion::prelude::{SessionConfig, SessionContext};
use quiver_catalog::MetaStore;
use quiver_udf_registry::{
    CheckedArithmetic, CreateFunction, FunctionRegistry, Kind, Limits, ModuleSource, RuntimeConfig,
    SqlType, TableColumn, Volatility, WasmAggregateUdf, WasmRuntime, WasmScalarUdf,
    WasmTableFunction,
};

const BATCH: usize = 8192;
const RUNS: usize = 3;
/// Rows of the table of one-row batches that measures the fixed cost of a call.
const CALLS: usize = 20_000;

/// `rows` rows of `x` (0, 1, ...) and `s` (short text), in batches of `batch`.
fn table(rows: usize, batch: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Int64, false),
        Field::new("s", DataType::Utf8, false),
    ]));
    let words = [
        "quiver",
        "arrow",
        "wasm",
        "datafusion",
        "ballista",
        "sandbox",
    ];
    let batches: Vec<RecordBatch> = (0..rows)
        .step_by(batch)
        .map(|start| {
            let end = (start + batch).min(rows);
            let x = Int64Array::from_iter_values((start as i64)..(end as i64));
            let s = StringArray::from_iter_values(
                (start..end).map(|i| format!("{} {i}", words[i % words.len()])),
            );
            RecordBatch::try_new(schema.clone(), vec![Arc::new(x), Arc::new(s)]).expect("batch")
        })
        .collect();
    // Two partitions: the machine has two cores.
    let half = batches.len() / 2;
    let (a, b) = batches.split_at(half);
    MemTable::try_new(schema, vec![a.to_vec(), b.to_vec()]).expect("table")
}

fn create(
    name: &str,
    args: Vec<SqlType>,
    returns: SqlType,
    module: ModuleSource,
    symbol: Option<&str>,
) -> CreateFunction {
    CreateFunction {
        name: name.into(),
        kind: Kind::Scalar,
        args,
        returns: Some(returns),
        module,
        symbol: symbol.map(str::to_string),
        volatility: Volatility::Immutable,
        strict: Some(true),
        limits: Limits::default(),
        grants: Default::default(),
        or_replace: false,
    }
}

async fn best(ctx: &SessionContext, sql: &str) -> (Duration, String) {
    let mut times = Vec::new();
    let mut answer = String::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let batches = ctx
            .sql(sql)
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs");
        times.push(started.elapsed());
        answer = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .expect("format")
            .to_string()
            .lines()
            .nth(3)
            .unwrap_or_default()
            .trim_matches(|c| c == '|' || c == ' ')
            .to_string();
    }
    (times.into_iter().min().unwrap_or_default(), answer)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let guest_dir = args.next().map(PathBuf::from).unwrap_or_else(|| {
        let out = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../dev"))
            .arg("guests")
            .output()
            .expect("./dev guests");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    });
    let rows: usize = args
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10_000_000);
    let only: Vec<String> = args.collect();
    let runs = |group: &str| only.is_empty() || only.iter().any(|g| g == group);

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MetaStore::open(&dir.path().join("catalog")).expect("store"));
    let runtime = Arc::new(WasmRuntime::new(RuntimeConfig::default()).expect("runtime"));
    let registry = FunctionRegistry::open(store, runtime, Arc::default(), Some(guest_dir), None)
        .expect("registry");
    let file = |f: &str| ModuleSource::File(format!("quiver_example_functions.wasm{f}"));
    let c_file = || ModuleSource::File("quiver_example_c.wasm".into());
    let py_file = || ModuleSource::File("quiver_example_python.wasm".into());
    let js_file = || ModuleSource::File("quiver_example_js.wasm".into());
    for create in [
        create("wasm_mul2_add1", vec![SqlType::Int64], SqlType::Int64, file(""), Some("mul2_add1")),
        create("wasm_upper", vec![SqlType::Text], SqlType::Text, file(""), Some("upper")),
        create("c_mul2_add1", vec![SqlType::Int64], SqlType::Int64, c_file(), Some("mul2_add1")),
        create("c_upper", vec![SqlType::Text], SqlType::Text, c_file(), Some("upper")),
        create("py_mul2_add1", vec![SqlType::Int64], SqlType::Int64, py_file(), Some("mul2_add1")),
        create("py_upper", vec![SqlType::Text], SqlType::Text, py_file(), Some("upper")),
        create(
            "py_mul2_add1_batch",
            vec![SqlType::Int64],
            SqlType::Int64,
            py_file(),
            Some("mul2_add1_batch"),
        ),
        create("py_upper_batch", vec![SqlType::Text], SqlType::Text, py_file(), Some("upper_batch")),
        create("js_mul2_add1", vec![SqlType::Int64], SqlType::Int64, js_file(), Some("mul2_add1")),
        create("js_upper", vec![SqlType::Text], SqlType::Text, js_file(), Some("upper")),
        create(
            "js_mul2_add1_batch",
            vec![SqlType::Int64],
            SqlType::Int64,
            js_file(),
            Some("mul2_add1_batch"),
        ),
        create("js_upper_batch", vec![SqlType::Text], SqlType::Text, js_file(), Some("upper_batch")),
        create(
            "core_mul2_add1",
            vec![SqlType::Int64],
            SqlType::Int64,
            ModuleSource::Inline("(module (func (export \"core_mul2_add1\") (param i64) (result i64) local.get 0 i64.const 2 i64.mul i64.const 1 i64.add))".into()),
            None,
        ),
        CreateFunction {
            kind: Kind::Aggregate,
            returns: None,
            ..create("wasm_sum", vec![SqlType::Int64], SqlType::Int64, file(""), None)
        },
        CreateFunction {
            kind: Kind::Aggregate,
            returns: None,
            ..create("wasm_avg", vec![SqlType::Float64], SqlType::Float64, file(""), None)
        },
        CreateFunction {
            kind: Kind::Table {
                columns: vec![TableColumn {
                    name: "n".into(),
                    ty: SqlType::Int64,
                }],
            },
            returns: None,
            ..create(
                "series",
                vec![SqlType::Int64; 3],
                SqlType::Int64,
                file(""),
                None,
            )
        },
    ] {
        registry.create(create).expect("function");
    }

    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(BATCH);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_table("t", Arc::new(table(rows, BATCH)))
        .expect("register");
    ctx.register_table("one_row_batches", Arc::new(table(CALLS, 1)))
        .expect("register");
    // Quiver's frontend plans integer `+`, `-`, `*` as these.
    for op in [Operator::Plus, Operator::Multiply] {
        let checked = CheckedArithmetic::udf(op).expect("a checked operator");
        ctx.register_udf(checked.as_ref().clone());
    }
    for (name, overloads) in registry.functions() {
        match overloads[0].def().kind {
            Kind::Scalar => ctx.register_udf(WasmScalarUdf::new_udf(&name, overloads, None)),
            Kind::Aggregate => {
                ctx.register_udaf(WasmAggregateUdf::new_udaf(&name, overloads, None))
            }
            Kind::Table { .. } => ctx.register_udtf(
                &name,
                Arc::new(WasmTableFunction::new(&name, overloads, None)),
            ),
            Kind::Folded(_) => unreachable!("the benchmark creates no SFUNC aggregates"),
            Kind::Transform => unreachable!("this benchmark creates no transforms"),
        }
    }

    println!("rows: {rows}, batch size: {BATCH}, best of {RUNS} runs, 2 partitions\n");
    println!("| query | time (ms) | vs native |");
    println!("|---|---:|---:|");
    // Each group: its name, whether the answers must be identical, the
    // native query and then what is compared with it.
    let groups: Vec<(&str, bool, Vec<(&str, &str)>)> = vec![
        (
            "numeric",
            true,
            vec![
                ("native: sum(x * 2 + 1)", "SELECT sum(x * 2 + 1) FROM t"),
                (
                    "native, checked as Quiver plans it: sum(x * 2 + 1)",
                    "SELECT sum(checked_add(checked_mul(x, 2), 1)) FROM t",
                ),
                (
                    "Wasm component: sum(wasm_mul2_add1(x))",
                    "SELECT sum(wasm_mul2_add1(x)) FROM t",
                ),
                (
                    "Wasm core module: sum(core_mul2_add1(x))",
                    "SELECT sum(core_mul2_add1(x)) FROM t",
                ),
                (
                    "Wasm component in C: sum(c_mul2_add1(x))",
                    "SELECT sum(c_mul2_add1(x)) FROM t",
                ),
                (
                    "Wasm component in Python: sum(py_mul2_add1(x))",
                    "SELECT sum(py_mul2_add1(x)) FROM t",
                ),
                (
                    "Wasm component in Python, vectorized: sum(py_mul2_add1_batch(x))",
                    "SELECT sum(py_mul2_add1_batch(x)) FROM t",
                ),
                (
                    "Wasm component in JavaScript: sum(js_mul2_add1(x))",
                    "SELECT sum(js_mul2_add1(x)) FROM t",
                ),
                (
                    "Wasm component in JavaScript, vectorized: sum(js_mul2_add1_batch(x))",
                    "SELECT sum(js_mul2_add1_batch(x)) FROM t",
                ),
            ],
        ),
        (
            "string",
            true,
            vec![
                (
                    "native: sum(length(upper(s)))",
                    "SELECT sum(length(upper(s))) FROM t",
                ),
                (
                    "Wasm component: sum(length(wasm_upper(s)))",
                    "SELECT sum(length(wasm_upper(s))) FROM t",
                ),
                (
                    "Wasm component in C: sum(length(c_upper(s)))",
                    "SELECT sum(length(c_upper(s))) FROM t",
                ),
                (
                    "Wasm component in Python: sum(length(py_upper(s)))",
                    "SELECT sum(length(py_upper(s))) FROM t",
                ),
                (
                    "Wasm component in Python, vectorized: sum(length(py_upper_batch(s)))",
                    "SELECT sum(length(py_upper_batch(s))) FROM t",
                ),
                (
                    "Wasm component in JavaScript: sum(length(js_upper(s)))",
                    "SELECT sum(length(js_upper(s))) FROM t",
                ),
                (
                    "Wasm component in JavaScript, vectorized: sum(length(js_upper_batch(s)))",
                    "SELECT sum(length(js_upper_batch(s))) FROM t",
                ),
                ("baseline: sum(length(s))", "SELECT sum(length(s)) FROM t"),
            ],
        ),
        (
            "aggregate",
            true,
            vec![
                ("native aggregate: sum(x)", "SELECT sum(x) FROM t"),
                ("Wasm aggregate: wasm_sum(x)", "SELECT wasm_sum(x) FROM t"),
            ],
        ),
        (
            "aggregate",
            false,
            vec![
                (
                    "native aggregate: avg(x::double)",
                    "SELECT avg(x::double) FROM t",
                ),
                ("Wasm aggregate: wasm_avg(x)", "SELECT wasm_avg(x) FROM t"),
            ],
        ),
        (
            "aggregate",
            true,
            vec![
                (
                    "native, 1,000 groups: sum(x) GROUP BY x % 1000",
                    "SELECT count(*), sum(s) FROM (SELECT x % 1000 AS g, sum(x) AS s FROM t GROUP BY x % 1000)",
                ),
                (
                    "Wasm, 1,000 groups: wasm_sum(x) GROUP BY x % 1000",
                    "SELECT count(*), sum(s) FROM (SELECT x % 1000 AS g, wasm_sum(x) AS s FROM t GROUP BY x % 1000)",
                ),
            ],
        ),
        (
            "table",
            true,
            vec![
                (
                    "native table function: generate_series(1, rows)",
                    "SELECT count(*), sum(value) FROM generate_series(1, ROWS)",
                ),
                (
                    "Wasm table function: series(1, rows, 1)",
                    "SELECT count(*), sum(n) FROM series(1, ROWS, 1)",
                ),
            ],
        ),
    ];
    for (_, exact, group) in groups.into_iter().filter(|(name, ..)| runs(name)) {
        let mut native = None;
        let mut answers = Vec::new();
        for (label, sql) in group {
            let (time, answer) = best(&ctx, &sql.replace("ROWS", &rows.to_string())).await;
            let native_time = *native.get_or_insert(time);
            println!(
                "| {label} | {:.1} | {:.2}x |",
                time.as_secs_f64() * 1e3,
                time.as_secs_f64() / native_time.as_secs_f64()
            );
            answers.push(answer);
        }
        if exact {
            assert!(
                answers.iter().all(|a| *a == answers[0]),
                "Wasm and native results agree: {answers:?}"
            );
        } else {
            println!("| (answers: {}) | | |", answers.join(" vs "));
        }
    }

    if !runs("calls") {
        return;
    }
    // The fixed cost of a call: each function over one-row batches, less
    // the native expression over the same batches.
    println!("\nfixed cost per call ({CALLS} one-row batches):\n");
    println!("| function | µs per call |");
    println!("|---|---:|");
    let (native, _) = best(&ctx, "SELECT sum(x * 2 + 1) FROM one_row_batches").await;
    for (function, call) in [
        ("wasm_mul2_add1", "sum(wasm_mul2_add1(x))"),
        ("core_mul2_add1", "sum(core_mul2_add1(x))"),
        ("c_mul2_add1", "sum(c_mul2_add1(x))"),
        ("wasm_upper", "sum(length(wasm_upper(s)))"),
        ("c_upper", "sum(length(c_upper(s)))"),
        ("py_mul2_add1", "sum(py_mul2_add1(x))"),
        ("py_upper", "sum(length(py_upper(s)))"),
        ("js_mul2_add1", "sum(js_mul2_add1(x))"),
        ("js_upper", "sum(length(js_upper(s)))"),
    ] {
        let (time, _) = best(&ctx, &format!("SELECT {call} FROM one_row_batches")).await;
        let per_call = time.saturating_sub(native).as_secs_f64() * 1e6 / CALLS as f64;
        println!("| {function} | {per_call:.2} |");
    }
}
