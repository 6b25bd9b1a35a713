//! The extended query protocol, as tokio-postgres speaks it: prepared
//! statements, typed binary parameters and binary results.

use chrono::NaiveDateTime;
use tokio_postgres::types::Type;

use crate::support::QuiverServer;

#[tokio::test(flavor = "multi_thread")]
async fn prepared_statements_bind_parameters_and_return_binary_rows() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (id BIGINT, name TEXT, score DOUBLE PRECISION, ts TIMESTAMP, ok BOOLEAN)")
        .await
        .expect("create");

    let ts = NaiveDateTime::parse_from_str("2024-01-02 03:04:05", "%Y-%m-%d %H:%M:%S")
        .expect("timestamp");
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, $2, $3, $4, $5)")
        .await
        .expect("prepare insert");
    for i in 1..=3i64 {
        let inserted = client
            .execute(
                &insert,
                &[&i, &format!("n{i}"), &(i as f64 * 1.5), &ts, &(i % 2 == 0)],
            )
            .await
            .expect("insert");
        assert_eq!(inserted, 1);
    }
    client
        .execute(
            &insert,
            &[
                &4i64,
                &None::<String>,
                &None::<f64>,
                &None::<NaiveDateTime>,
                &None::<bool>,
            ],
        )
        .await
        .expect("insert nulls");

    let rows = client
        .query(
            "SELECT id, name, score, ts, ok FROM t WHERE id >= $1 ORDER BY id",
            &[&2i64],
        )
        .await
        .expect("select");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].columns()[0].name(), "id");
    assert_eq!(rows[0].get::<_, i64>(0), 2);
    assert_eq!(rows[0].get::<_, String>(1), "n2");
    assert_eq!(rows[0].get::<_, f64>(2), 3.0);
    assert_eq!(rows[0].get::<_, NaiveDateTime>(3), ts);
    assert!(rows[0].get::<_, bool>(4));
    assert_eq!(rows[2].get::<_, Option<String>>(1), None);

    let count = client
        .query_one("SELECT count(*) FROM t WHERE name = $1", &[&"n3"])
        .await
        .expect("count");
    assert_eq!(count.columns()[0].name(), "count");
    assert_eq!(count.get::<_, i64>(0), 1);

    let error = client
        .query("SELECT * FROM missing WHERE id = $1", &[&1i64])
        .await
        .expect_err("missing table");
    assert_eq!(error.code().map(|c| c.code()), Some("42P01"));
    // Statements without parameters work too, and the session is still fine.
    client
        .execute("CREATE TABLE u (x INT)", &[])
        .await
        .expect("ddl over the extended protocol");
    let total = client
        .query_one("SELECT sum(id) FROM t", &[])
        .await
        .expect("sum");
    assert_eq!(total.get::<_, i64>(0), 10);
    drop(client);
    server.stop();
}

/// An Execute for every row of a large result (tokio-postgres asks for all
/// of them) gets every row and one `CommandComplete` that counts them all,
/// though the server fetches them in parts; one with a row limit gets
/// parts and reads on (a portal).
#[tokio::test(flavor = "multi_thread")]
async fn large_results_arrive_whole_and_by_portal() {
    let (_data, server) = QuiverServer::start_fresh();
    let mut client = server.connect().await;
    let query = "SELECT x FROM generate_series(1, 10000) g(x) ORDER BY x";
    let rows = client.query(query, &[]).await.expect("query");
    assert_eq!(rows.len(), 10_000);
    assert_eq!(rows[9_999].get::<_, i64>(0), 10_000);
    let counted = client.execute(query, &[]).await.expect("execute");
    assert_eq!(counted, 10_000, "CommandComplete counts every row");

    // A portal read 3,000 rows at a time.
    let transaction = client.transaction().await.expect("begin");
    let portal = transaction.bind(query, &[]).await.expect("bind");
    let mut read = Vec::new();
    loop {
        let part = transaction
            .query_portal(&portal, 3_000)
            .await
            .expect("fetch");
        if part.is_empty() {
            break;
        }
        assert!(part.len() <= 3_000);
        read.extend(part.iter().map(|row| row.get::<_, i64>(0)));
    }
    transaction.commit().await.expect("commit");
    assert_eq!(read, (1..=10_000).collect::<Vec<i64>>());
}

/// Parameters among a table function's arguments, built-in or Wasm: each
/// execution plans the call with its values; the parameters' types are
/// those PostgreSQL infers from the function.
#[tokio::test(flavor = "multi_thread")]
async fn parameters_among_table_function_arguments() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE FUNCTION series(bigint, bigint, bigint) RETURNS TABLE (n bigint) LANGUAGE wasm AS 'quiver_example_functions.wasm', 'series'",
        )
        .await
        .expect("create");

    let filtered = client
        .prepare("SELECT x FROM generate_series(1, $1) AS g(x) WHERE x > $2 ORDER BY x")
        .await
        .expect("prepare");
    assert_eq!(filtered.params(), [Type::INT8, Type::INT8]);
    assert_eq!(filtered.columns()[0].type_(), &Type::INT8);
    for (to, above, expected) in [(5i64, 2i64, vec![3i64, 4, 5]), (3, 0, vec![1, 2, 3])] {
        let rows = client
            .query(&filtered, &[&to, &above])
            .await
            .expect("query");
        let got: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(got, expected);
    }

    let summed = client
        .prepare("SELECT sum(n) FROM series($1, $2, 1)")
        .await
        .expect("prepare");
    assert_eq!(summed.params(), [Type::INT8, Type::INT8]);
    for (from, to) in [(1i64, 10i64), (5, 6)] {
        let sum: i64 = client
            .query_one(&summed, &[&from, &to])
            .await
            .expect("query")
            .get(0);
        assert_eq!(sum, (from..=to).sum::<i64>(), "series({from}, {to}, 1)");
    }
    // A transform's: typed from its declared arguments after the table
    // (its columns are described at Parse with a stand-in value, zero here);
    // a LATERAL call's too.
    client
        .batch_execute(
            "CREATE FUNCTION score(TABLE, text, double precision) RETURNS TABLE LANGUAGE wasm AS 'quiver_example_transforms.wasm', 'score';
             CREATE TABLE xs AS SELECT CAST(i AS double precision) AS x FROM generate_series(1, 4) t(i)",
        )
        .await
        .expect("create");
    let scored = client
        .prepare("SELECT count(*) FROM score(TABLE xs, 'x:1', $1) WHERE score > 0.5")
        .await
        .expect("prepare");
    assert_eq!(scored.params(), [Type::FLOAT8]);
    for (bias, expected) in [(0.0f64, 4i64), (-2.5, 2)] {
        let high: i64 = client
            .query_one(&scored, &[&bias])
            .await
            .expect("query")
            .get(0);
        assert_eq!(high, expected, "bias {bias}");
    }
    let lateral = client
        .prepare("SELECT sum(s.n) FROM xs, LATERAL series(1, CAST(xs.x AS bigint), $1) s")
        .await
        .expect("prepare");
    assert_eq!(lateral.params(), [Type::INT8]);
    let sum: i64 = client
        .query_one(&lateral, &[&2i64])
        .await
        .expect("query")
        .get(0);
    // 1; 1; 1 + 3; 1 + 3.
    assert_eq!(sum, 10);

    // A NULL among them is a NULL argument, as written.
    let empty = client
        .query(
            "SELECT count(*) FROM generate_series(1, $1)",
            &[&None::<i64>],
        )
        .await
        .expect("query");
    assert_eq!(empty[0].get::<_, i64>(0), 0);
}

/// The same text parsed again (each `query` below parses it: a statement
/// is kept by its text, `crate::plan_cache`) answers from what is there
/// when it runs: new rows, a table dropped and created again by another
/// session, a temporary table in front of it, a transaction block's own
/// writes and their rollback, a function replaced.
#[tokio::test(flavor = "multi_thread")]
async fn texts_parsed_again_see_what_changed() {
    let (_data, server) = QuiverServer::start_fresh();
    let a = server.connect().await;
    let b = server.connect().await;
    const LOOKUP: &str = "SELECT * FROM t WHERE k >= $1 ORDER BY k";
    async fn lookup(client: &tokio_postgres::Client) -> Vec<String> {
        let rows = client.query(LOOKUP, &[&0i64]).await.expect("lookup");
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| match row.columns()[i].type_() {
                        &Type::INT8 => row.get::<_, i64>(i).to_string(),
                        _ => row.get::<_, String>(i),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    a.batch_execute("CREATE TABLE t (k BIGINT); INSERT INTO t VALUES (1)")
        .await
        .expect("create");
    assert_eq!(lookup(&a).await, ["1"]);
    assert_eq!(lookup(&a).await, ["1"]);
    b.batch_execute("INSERT INTO t VALUES (2)")
        .await
        .expect("insert");
    assert_eq!(lookup(&a).await, ["1", "2"]);

    // Another session replaces the table.
    b.batch_execute(
        "DROP TABLE t; CREATE TABLE t (k BIGINT, v TEXT); INSERT INTO t VALUES (5, 'x')",
    )
    .await
    .expect("replace");
    assert_eq!(lookup(&a).await, ["5,x"]);

    // A temporary table of the same name comes first, until dropped.
    a.batch_execute(
        "CREATE TEMPORARY TABLE t (k BIGINT, v TEXT, w TEXT); INSERT INTO t VALUES (7, 'a', 'b')",
    )
    .await
    .expect("temporary");
    assert_eq!(lookup(&a).await, ["7,a,b"]);
    assert_eq!(lookup(&b).await, ["5,x"]);
    a.batch_execute("DROP TABLE t")
        .await
        .expect("drop temporary");
    assert_eq!(lookup(&a).await, ["5,x"]);

    // A block sees its own writes; after ROLLBACK they are gone.
    a.batch_execute("BEGIN; INSERT INTO t VALUES (6, 'y')")
        .await
        .expect("begin");
    assert_eq!(lookup(&a).await, ["5,x", "6,y"]);
    assert_eq!(lookup(&b).await, ["5,x"]);
    a.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(lookup(&a).await, ["5,x"]);

    // A function replaced by another session.
    const CALL: &str = "SELECT f(k) FROM t WHERE k = $1";
    let wat = |n: i64| {
        format!(
            "CREATE FUNCTION f(bigint) RETURNS bigint LANGUAGE wasm AS '(module (func (export \"f\") (param i64) (result i64) local.get 0 i64.const {n} i64.add))'"
        )
    };
    a.batch_execute(&wat(1)).await.expect("create function");
    async fn call(client: &tokio_postgres::Client) -> i64 {
        let row = client.query_one(CALL, &[&5i64]).await.expect("call");
        row.get::<_, i64>(0)
    }
    assert_eq!(call(&a).await, 6);
    assert_eq!(call(&a).await, 6);
    b.batch_execute(&format!("DROP FUNCTION f(bigint); {}", wat(100)))
        .await
        .expect("replace function");
    assert_eq!(call(&a).await, 105);
}

/// A statement prepared once, by name, and run after what it reads
/// changed reads what is there then: its own transaction block's writes
/// (each block's), a table another session replaced. One whose result
/// would change type fails with 0A000, as in PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn prepared_statements_read_what_is_there_when_they_run() {
    let (_data, server) = QuiverServer::start_fresh();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE t (k BIGINT, v TEXT); INSERT INTO t VALUES (1, 'a')")
        .await
        .expect("create");
    let count = a
        .prepare("SELECT count(*) FROM t WHERE k >= $1")
        .await
        .expect("prepare");
    let counted = async |client: &tokio_postgres::Client| -> i64 {
        let row = client.query_one(&count, &[&0i64]).await.expect("count");
        row.get(0)
    };
    assert_eq!(counted(&a).await, 1);

    a.batch_execute("BEGIN; INSERT INTO t VALUES (2, 'b')")
        .await
        .expect("first block");
    assert_eq!(counted(&a).await, 2);
    a.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(counted(&a).await, 1);
    a.batch_execute("BEGIN; INSERT INTO t VALUES (3, 'c')")
        .await
        .expect("second block");
    assert_eq!(counted(&a).await, 2);
    a.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(counted(&a).await, 2);

    b.batch_execute(
        "DROP TABLE t; CREATE TABLE t (k BIGINT, v TEXT); INSERT INTO t VALUES (9, 'z'), (10, 'y'), (11, 'x')",
    )
    .await
    .expect("replace");
    assert_eq!(counted(&a).await, 3);

    let all = a
        .prepare("SELECT * FROM t WHERE k >= $1")
        .await
        .expect("prepare all");
    assert_eq!(a.query(&all, &[&0i64]).await.expect("all").len(), 3);
    b.batch_execute("DROP TABLE t; CREATE TABLE t (k BIGINT)")
        .await
        .expect("replace with other columns");
    let error = a
        .query(&all, &[&0i64])
        .await
        .expect_err("result type changed");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
        "{error}"
    );
    assert_eq!(counted(&a).await, 0);
}

/// A prepared query goes through DataFusion's optimizer once, at its first
/// execution, and each later one binds its values into that plan: each
/// still gets its own answer, what depends on the values (a cast of one,
/// `IS NULL`, `LIMIT`) is decided with them, a function such as `now()` is
/// read when each execution runs, not when the plan was made, and what the
/// role may read is checked on the query as written.
#[tokio::test(flavor = "multi_thread")]
async fn prepared_queries_optimized_once_answer_each_execution() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (k BIGINT, v TEXT);
             INSERT INTO t SELECT x, 'v' || x FROM generate_series(1, 100) g(x)",
        )
        .await
        .expect("create");

    let lookup = client
        .prepare("SELECT v FROM t WHERE k = $1")
        .await
        .expect("prepare lookup");
    for k in [5i64, 17, 100, 101, 5] {
        let found: Vec<String> = client
            .query(&lookup, &[&k])
            .await
            .expect("lookup")
            .iter()
            .map(|row| row.get(0))
            .collect();
        let expected: Vec<String> = (k <= 100).then(|| format!("v{k}")).into_iter().collect();
        assert_eq!(found, expected, "k = {k}");
    }

    let either = client
        .prepare("SELECT count(*) FROM t WHERE $1::bigint IS NULL OR k <= $1::bigint")
        .await
        .expect("prepare either");
    let counted = async |bound: Option<i64>| -> i64 {
        let row = client.query_one(&either, &[&bound]).await.expect("count");
        row.get(0)
    };
    assert_eq!(counted(Some(10)).await, 10);
    assert_eq!(counted(None).await, 100);
    assert_eq!(counted(Some(0)).await, 0);

    let first = client
        .prepare("SELECT k FROM t ORDER BY k LIMIT $1 OFFSET $2")
        .await
        .expect("prepare limit");
    let keys = async |limit: i64, offset: i64| -> Vec<i64> {
        let rows = client.query(&first, &[&limit, &offset]).await;
        rows.expect("limit").iter().map(|row| row.get(0)).collect()
    };
    assert_eq!(keys(3, 0).await, vec![1, 2, 3]);
    assert_eq!(keys(2, 98).await, vec![99, 100]);
    let error = client
        .query(&first, &[&4_000_000_000i64, &1_000_000_000i64])
        .await
        .expect_err("a limit past u32::MAX rows");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
        "{error}"
    );

    let now = client
        .prepare("SELECT CAST(now() AS TEXT) FROM t WHERE k = $1")
        .await
        .expect("prepare now");
    let at = async || -> String {
        let row = client.query_one(&now, &[&1i64]).await.expect("now");
        row.get(0)
    };
    let earlier = at().await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_ne!(at().await, earlier, "now() is read as each execution runs");

    // Privileges are those of the query as written: a table the optimizer
    // need not read (`AND false`) is still one the role must be allowed to.
    client
        .batch_execute("CREATE ROLE reader; SET SESSION AUTHORIZATION reader")
        .await
        .expect("act as reader");
    let hidden = client
        .prepare("SELECT count(*) FROM t WHERE k = $1 AND 1 = 0")
        .await
        .expect("prepare hidden");
    let error = client
        .query(&hidden, &[&1i64])
        .await
        .expect_err("reader may not read t");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn returning_rows_of_prepared_inserts_updates_and_deletes() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE kv (k BIGINT, v TEXT)")
        .await
        .expect("setup");
    let insert = client
        .prepare("INSERT INTO kv VALUES ($1, $2) RETURNING k, upper(v) AS shout")
        .await
        .expect("prepare");
    // Described as the RETURNING list's columns, typed as a query's.
    let columns: Vec<_> = insert
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_().clone()))
        .collect();
    assert_eq!(
        columns,
        [
            ("k".to_string(), Type::INT8),
            ("shout".to_string(), Type::TEXT)
        ]
    );
    assert_eq!(insert.params(), [Type::INT8, Type::TEXT]);
    for (k, v) in [(1i64, "one"), (2, "two")] {
        let rows = client.query(&insert, &[&k, &v]).await.expect("insert");
        let returned: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(returned, [(k, v.to_uppercase())]);
    }
    let update = client
        .query(
            "UPDATE kv SET v = v || $1 WHERE k >= $2 RETURNING k, v",
            &[&"!", &2i64],
        )
        .await
        .expect("update");
    let updated: Vec<(i64, String)> = update.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(updated, [(2, "two!".to_string())]);
    let deleted = client
        .query("DELETE FROM kv WHERE k = $1 RETURNING v", &[&1i64])
        .await
        .expect("delete");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].get::<_, String>(0), "one");
    // The command tags count the rows, as PostgreSQL's do.
    assert_eq!(
        client
            .execute("UPDATE kv SET v = 'x' RETURNING k", &[])
            .await
            .expect("update"),
        1
    );
    let left = client
        .query("SELECT k, v FROM kv", &[])
        .await
        .expect("rows");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].get::<_, String>(1), "x");
}
