//! Where queries run, seen through EXPLAIN: user tables through Ballista
//! stages, catalog and constant queries on the frontend.

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

#[tokio::test(flavor = "multi_thread")]
async fn joins_run_as_ballista_stages_and_catalog_queries_run_locally() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE a (id BIGINT, x TEXT); CREATE TABLE b (id BIGINT, y TEXT);
             INSERT INTO a VALUES (1, 'one'); INSERT INTO b VALUES (1, 'uno');",
        )
        .await
        .expect("tables");

    let plan = explain(&client, "SELECT * FROM a JOIN b ON a.id = b.id").await;
    let distributed = plan
        .iter()
        .find(|(kind, _)| kind == "distributed_plan")
        .unwrap_or_else(|| panic!("a join over stored tables is planned by Ballista: {plan:?}"));
    assert!(
        distributed.1.contains("Stage") && distributed.1.contains("ShuffleWriterExec"),
        "the distributed plan shows stages: {}",
        distributed.1
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
