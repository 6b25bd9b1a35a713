//! Where queries run, seen through EXPLAIN: small reads of stored tables on
//! the frontend, larger ones through Ballista stages, catalog and constant
//! queries on the frontend.

use crate::support::{QuiverServer, rows};

/// `(plan_type, plan)` rows of an EXPLAIN.
async fn explain(client: &tokio_postgres::Client, sql: &str) -> Vec<(String, String)> {
    rows(client, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .map(|row| {
            let mut values = row.into_iter().map(Option::unwrap_or_default);
            (
                values.next().unwrap_or_default(),
                values.next().unwrap_or_default(),
            )
        })
        .collect()
}

/// The `route` row of an EXPLAIN run on the frontend.
fn route(plan: &[(String, String)]) -> Option<&str> {
    plan.iter()
        .find(|(kind, _)| kind == "route")
        .map(|(_, text)| text.as_str())
}

/// The distributed plan of an EXPLAIN (the statement must be planned by
/// Ballista).
async fn distributed_plan(client: &tokio_postgres::Client, sql: &str) -> String {
    let plan = explain(client, sql).await;
    plan.iter()
        .find(|(kind, _)| kind == "distributed_plan")
        .map(|(_, text)| text.clone())
        .unwrap_or_else(|| panic!("{sql} is planned by Ballista: {plan:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn small_reads_run_on_the_frontend_and_larger_ones_as_ballista_stages() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE a (id BIGINT, x TEXT); CREATE TABLE b (id BIGINT, y TEXT);
             INSERT INTO a VALUES (1, 'one'); INSERT INTO b VALUES (1, 'uno');",
        )
        .await
        .expect("tables");
    let join = "SELECT * FROM a JOIN b ON a.id = b.id";

    // A few hundred bytes of Parquet: under the default limit (8 MiB).
    let plan = explain(&client, join).await;
    let local = route(&plan).unwrap_or_else(|| panic!("a small join runs locally: {plan:?}"));
    assert!(
        local.starts_with("frontend: reads ") && local.contains("quiver.local_read_limit"),
        "{local}"
    );
    assert!(plan.iter().all(|(kind, _)| kind != "distributed_plan"));

    // Past the session's limit (here 100 bytes): Ballista's stages.
    client
        .batch_execute("SET quiver.local_read_limit = 100")
        .await
        .expect("set");
    let distributed = distributed_plan(&client, join).await;
    assert!(
        distributed.contains("Stage") && distributed.contains("ShuffleWriterExec"),
        "the distributed plan shows stages: {distributed}"
    );
    assert_eq!(
        rows(&client, &format!("{join} ORDER BY 1")).await,
        vec![vec![
            Some("1".into()),
            Some("one".into()),
            Some("1".into()),
            Some("uno".into())
        ]]
    );
    let error = client
        .simple_query("SET quiver.local_read_limit = 'lots'")
        .await
        .expect_err("not a number");
    let message = error.as_db_error().map(|e| e.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("number of bytes")),
        "{error:?}"
    );

    for local in [
        "SELECT relname FROM pg_catalog.pg_class",
        "SELECT table_name FROM information_schema.tables",
        "SELECT 1 + 1",
    ] {
        let plan = explain(&client, local).await;
        assert!(
            plan.iter().all(|(kind, _)| kind != "distributed_plan"),
            "{local} runs on the frontend: {plan:?}"
        );
    }
    drop(client);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn joins_are_hash_joins_unless_the_build_side_is_too_large_to_hold() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE a (id BIGINT, x TEXT); CREATE TABLE b (id BIGINT, y TEXT);
             INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 100) g;
             INSERT INTO b SELECT g % 50, 'b' || g FROM generate_series(1, 300) g;
             SET quiver.local_read_limit = 0;",
        )
        .await
        .expect("tables");
    let join = "SELECT a.x, b.y FROM a JOIN b ON a.id = b.id";
    let answer = rows(&client, &format!("{join} ORDER BY 1, 2")).await;
    assert_eq!(answer.len(), 294);

    let plan = distributed_plan(&client, join).await;
    assert!(
        plan.contains("HashJoinExec") && !plan.contains("SortMergeJoinExec"),
        "a join is a hash join: {plan}"
    );

    // No build side collected, and every one over the (here one-byte)
    // limit of a partition's build side: a sort-merge join, which spills.
    client
        .batch_execute(
            "SET datafusion.optimizer.hash_join_single_partition_threshold = 0;
             SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0;
             SET ballista.optimizer.hash_join_max_build_partition_bytes = 1;",
        )
        .await
        .expect("set");
    let plan = distributed_plan(&client, join).await;
    assert!(
        plan.contains("SortMergeJoinExec") && !plan.contains("HashJoinExec"),
        "a join whose build side is too large is a sort-merge join: {plan}"
    );
    assert_eq!(
        rows(&client, &format!("{join} ORDER BY 1, 2")).await,
        answer
    );

    // 0 turns the limit off: hash joins over shuffled inputs.
    client
        .batch_execute("SET ballista.optimizer.hash_join_max_build_partition_bytes = 0")
        .await
        .expect("set");
    let plan = distributed_plan(&client, join).await;
    assert!(plan.contains("HashJoinExec"), "{plan}");
    assert_eq!(
        rows(&client, &format!("{join} ORDER BY 1, 2")).await,
        answer
    );
    drop(client);
    server.stop();
}

/// The partitions of the grouping step of a distributed plan (its hash
/// repartitioning's count).
fn grouping_partitions(plan: &str) -> Option<usize> {
    let at = plan.find("Hash([")?;
    let rest = &plan[at..];
    let count = &rest[rest.find("], ")? + 3..];
    count[..count.find(')')?].parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_are_split_into_twice_the_slots_unless_told_otherwise() {
    let data = tempfile::tempdir().expect("data dir");
    let server = QuiverServer::start_with(data.path(), &["--executor-slots", "3"]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE a (id BIGINT, x TEXT);
             INSERT INTO a SELECT g, 'x' || g % 7 FROM generate_series(1, 100) g;
             SET quiver.local_read_limit = 0;",
        )
        .await
        .expect("table");
    let grouping = "SELECT x, count(*) FROM a GROUP BY x";
    let answer = rows(&client, &format!("{grouping} ORDER BY 1")).await;
    assert_eq!(answer.len(), 7);
    let setting = "SHOW datafusion.execution.target_partitions";
    assert_eq!(
        rows(&client, setting).await[0].last(),
        Some(&Some("6".into()))
    );
    let plan = distributed_plan(&client, grouping).await;
    assert_eq!(grouping_partitions(&plan), Some(6), "{plan}");

    // A session may choose another count.
    client
        .batch_execute("SET datafusion.execution.target_partitions = 5")
        .await
        .expect("set");
    let plan = distributed_plan(&client, grouping).await;
    assert_eq!(grouping_partitions(&plan), Some(5), "{plan}");
    assert_eq!(
        rows(&client, &format!("{grouping} ORDER BY 1")).await,
        answer
    );
    drop(client);
    server.stop();

    // `--partitions` sets every session's default.
    let server = QuiverServer::start_with(data.path(), &["--partitions", "1"]);
    let client = server.connect().await;
    assert_eq!(
        rows(&client, setting).await[0].last(),
        Some(&Some("1".into()))
    );
    client
        .batch_execute("SET quiver.local_read_limit = 0")
        .await
        .expect("set");
    assert_eq!(
        rows(&client, &format!("{grouping} ORDER BY 1")).await,
        answer
    );
    drop(client);
    server.stop();
}
