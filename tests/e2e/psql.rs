//! The real `psql` binary: `\dt`, `\d t`, `\copy` in and out, `\du`, `\dp`
//! and the other describe commands.

use std::process::{Command, Output};

use crate::support::{Cluster, Loss, QuiverServer};

/// Runs `psql -c` for each of `commands`, stopping at the first error.
fn run_psql(server: &QuiverServer, commands: &[&str]) -> Output {
    let port = server.port().to_string();
    let mut command = Command::new("psql");
    command
        .args([
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            server.host(),
            "-p",
            &port,
        ])
        .args(["-U", "quiver", "-d", "quiver"])
        .env("PGCONNECT_TIMEOUT", "10");
    for c in commands {
        command.args(["-c", c]);
    }
    command
        .output()
        .expect("psql is installed (the README test command installs postgresql-client)")
}

/// Like [`run_psql`], and the commands must succeed; returns what psql printed.
fn psql(server: &QuiverServer, commands: &[&str]) -> String {
    let output = run_psql(server, commands);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "psql {commands:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

#[test]
fn psql_describes_tables_and_copies_in_and_out() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = QuiverServer::start(&data.path().join("db"));
    let input = data.path().join("in.csv");
    std::fs::write(
        &input,
        "id,name,score,ts\n1,ada,9.5,2024-01-02 03:04:05\n2,\"grace, hopper\",7.25,\n3,,,2024-03-01 00:00:00\n",
    )
    .expect("write csv");
    let output = data.path().join("out.csv");

    let out = psql(
        &server,
        &[
            "CREATE TABLE t (id BIGINT, name TEXT, score DOUBLE PRECISION, ts TIMESTAMP)",
            &format!("\\copy t FROM '{}' CSV HEADER", input.display()),
            &format!(
                "\\copy (SELECT id, name, score FROM t ORDER BY id) TO '{}' CSV HEADER",
                output.display()
            ),
        ],
    );
    assert!(out.contains("COPY 3"), "copy in reports its rows: {out}");
    assert_eq!(
        std::fs::read_to_string(&output).expect("copy out wrote the file"),
        "id,name,score\n1,ada,9.5\n2,\"grace, hopper\",7.25\n3,,\n"
    );

    let tables = psql(&server, &["\\dt"]);
    assert!(
        tables
            .lines()
            .any(|l| l.contains("public") && l.contains("| t ") && l.contains("table")),
        "\\dt lists t:\n{tables}"
    );

    let described = psql(&server, &["\\d t"]);
    for (column, ty) in [
        ("id", "bigint"),
        ("name", "text"),
        ("score", "double precision"),
        ("ts", "timestamp without time zone"),
    ] {
        assert!(
            described
                .lines()
                .any(|l| l.contains(column) && l.contains(ty)),
            "\\d t shows {column} {ty}:\n{described}"
        );
    }

    // \d shows defaults, keys and the indexes behind them.
    let keyed = psql(
        &server,
        &[
            "CREATE TABLE keyed (id serial PRIMARY KEY, code text UNIQUE, note varchar(5) DEFAULT 'x')",
            "\\d keyed",
        ],
    );
    for expected in [
        "nextval('public.keyed_id_seq'::regclass)",
        "'x'",
        "\"keyed_pkey\" PRIMARY KEY, btree (id)",
        "\"keyed_code_key\" UNIQUE CONSTRAINT, btree (code)",
    ] {
        assert!(
            keyed.contains(expected),
            "\\d keyed shows {expected}:\n{keyed}"
        );
    }
    // ... and the foreign keys of a table, and those referencing it.
    let referencing = psql(
        &server,
        &[
            "CREATE TABLE refs (k int REFERENCES keyed (id))",
            "\\d refs",
            "\\d keyed",
        ],
    );
    for expected in [
        "Foreign-key constraints:",
        "\"refs_k_fkey\" FOREIGN KEY (k) REFERENCES keyed(id)",
        "Referenced by:",
        "TABLE \"refs\" CONSTRAINT \"refs_k_fkey\" FOREIGN KEY (k) REFERENCES keyed(id)",
    ] {
        assert!(
            referencing.contains(expected),
            "\\d shows {expected}:\n{referencing}"
        );
    }

    // \dp shows what was granted on the table, in PostgreSQL's ACL form.
    let privileges = psql(&server, &["GRANT SELECT ON t TO PUBLIC", "\\dp t"]);
    assert!(
        privileges.contains("Access privileges") && privileges.contains("=r/"),
        "\\dp t:\n{privileges}"
    );

    // A bad row appends nothing and the session goes on.
    let bad = data.path().join("bad.csv");
    std::fs::write(&bad, "id,name,score,ts\n4,x,1,\nnot-a-number,y,2,\n").expect("write csv");
    let failed = run_psql(
        &server,
        &[&format!("\\copy t FROM '{}' CSV HEADER", bad.display())],
    );
    assert!(!failed.status.success(), "a bad row fails the copy");
    let count = psql(&server, &["SELECT count(*) FROM t"]);
    assert!(
        count.contains(" 3\n"),
        "no row of the failed copy was appended: {count}"
    );
    server.stop();
}

/// A script with inline `COPY` data (ended by `\.`, as psql sends it) into
/// `char(n)` and `varchar(n)` columns; values come back as PostgreSQL writes
/// them, a `char(4)` one padded to 4 characters.
#[test]
fn psql_scripts_copy_inline_data_and_show_char_padding() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = QuiverServer::start(&data.path().join("db"));
    let script = data.path().join("load.sql");
    std::fs::write(
        &script,
        "CREATE TABLE codes (c char(4), v varchar(3));\n\
         \\copy codes FROM stdin\n\
         ab\txy\n\
         abcd  \tx  \n\
         \\.\n\
         \\pset format unaligned\n\
         SELECT c, v, c || '|' AS joined FROM codes ORDER BY c;\n",
    )
    .expect("write script");
    let out = psql(&server, &[&format!("\\i {}", script.display())]);
    assert!(out.contains("COPY 2"), "the copy ends at \\.: {out}");
    assert!(
        out.contains("ab  |xy|ab|\nabcd|x  |abcd|\n"),
        "char(4) values are padded, varchar(3) ones kept as stored: {out:?}"
    );

    // A value too long for its column fails the copy with 22001.
    std::fs::write(&script, "\\copy codes FROM stdin\ntoolong\tx\n\\.\n").expect("write script");
    let failed = run_psql(&server, &[&format!("\\i {}", script.display())]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("value too long for type character(4)"),
        "the copy fails: {stderr}"
    );
    let count = psql(&server, &["SELECT count(*) FROM codes"]);
    assert!(count.contains(" 2\n"), "nothing of it was stored: {count}");
    server.stop();
}

#[test]
fn psql_lists_wasm_functions_with_df() {
    let (_data, server) = QuiverServer::start_fresh();
    let out = psql(
        &server,
        &[
            "CREATE FUNCTION add1(bigint) RETURNS bigint LANGUAGE wasm AS '(module (func (export \"add1\") (param i64) (result i64) local.get 0 i64.const 1 i64.add))'",
            "CREATE FUNCTION wasm_gcd(bigint, bigint) RETURNS bigint LANGUAGE wasm AS 'quiver_example_functions.wasm', 'gcd'",
            "\\df",
            "\\df add1",
        ],
    );
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(
        lines.contains(&"public | add1     | bigint           | bigint              | func"),
        "{out}"
    );
    assert!(
        lines.contains(&"public | wasm_gcd | bigint           | bigint, bigint      | func"),
        "{out}"
    );
    assert!(
        lines.contains(&"public | add1 | bigint           | bigint              | func"),
        "{out}"
    );

    // `\sf`: the definition with its SET clauses, which runs as written.
    let out = psql(
        &server,
        &[
            "CREATE OR REPLACE FUNCTION wasm_gcd(bigint, bigint) RETURNS bigint LANGUAGE wasm IMMUTABLE STRICT \
             SET quiver.wasm.time_limit = '2s' SET quiver.wasm.files = 'testdata' \
             AS 'quiver_example_functions.wasm', 'gcd'",
            "\\sf wasm_gcd",
        ],
    );
    let definition = out
        .split_once("CREATE OR REPLACE FUNCTION public.wasm_gcd")
        .map(|(_, rest)| format!("CREATE OR REPLACE FUNCTION public.wasm_gcd{rest}"))
        .unwrap_or_else(|| panic!("no definition in: {out}"));
    for line in [
        " RETURNS bigint\n",
        " LANGUAGE wasm\n",
        " IMMUTABLE STRICT PARALLEL SAFE\n",
        " SET \"quiver.wasm.time_limit\" TO '2000ms'\n",
        " SET \"quiver.wasm.files\" TO 'testdata'\n",
        ", 'gcd'",
    ] {
        assert!(definition.contains(line), "no {line:?} in {definition}");
    }
    let out = psql(
        &server,
        &[
            &definition,
            "SELECT wasm_gcd(12, 18), grants, time_limit_ms FROM quiver.functions WHERE name = 'wasm_gcd'",
        ],
    );
    assert!(out.contains("6 | files=testdata |          2000"), "{out}");
    server.stop();
}

/// psql's other describe commands, display toggles and the catalog queries
/// its tab completion sends (psql 15's, for tables, columns, functions and
/// settings) all answer without error.
#[test]
fn psql_meta_commands_and_tab_completion_queries() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = QuiverServer::start(&data.path().join("db"));
    let out = psql(
        &server,
        &[
            "CREATE TABLE things (id BIGINT, label TEXT)",
            "CREATE FUNCTION add1(bigint) RETURNS bigint LANGUAGE wasm AS '(module (func (export \"add1\") (param i64) (result i64) local.get 0 i64.const 1 i64.add))'",
            "\\df",
            "\\dn",
            "\\l",
            "\\du",
            "\\x",
            "\\timing",
            "SELECT c.relname, NULL::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p') AND (c.relname) LIKE 'th%' AND pg_catalog.pg_table_is_visible(c.oid) AND c.relnamespace <> (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pg_catalog') UNION ALL SELECT NULL::pg_catalog.text, n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname LIKE 'th%' AND n.nspname NOT LIKE E'pg\\\\_%' LIMIT 1000",
            "SELECT pg_catalog.quote_ident(attname) FROM pg_catalog.pg_attribute a, pg_catalog.pg_class c WHERE c.oid = a.attrelid AND a.attnum > 0 AND NOT a.attisdropped AND substring(pg_catalog.quote_ident(attname),1,0)='' AND (pg_catalog.quote_ident(relname)='things' OR '\"' || relname || '\"'='things') AND pg_catalog.pg_table_is_visible(c.oid) LIMIT 1000",
            "SELECT pg_catalog.quote_ident(p.proname) FROM pg_catalog.pg_proc p WHERE substring(pg_catalog.quote_ident(p.proname),1,3)='add' AND pg_catalog.pg_function_is_visible(p.oid) LIMIT 1000",
            "SELECT name FROM (SELECT pg_catalog.lower(name) AS name FROM pg_catalog.pg_settings WHERE context IN ('user', 'superuser') UNION ALL SELECT 'transaction' UNION ALL SELECT 'all') ss WHERE substring(name,1,4)='time' LIMIT 1000",
        ],
    );
    // \df lists the Wasm function with its signature.
    assert!(out.contains("add1") && out.contains("bigint"), "{out}");
    assert!(
        out.contains("List of schemas") && out.contains("List of databases"),
        "{out}"
    );
    assert!(out.contains("List of roles"), "{out}");
    assert!(
        out.contains("Expanded display is on.") && out.contains("Timing is on."),
        "{out}"
    );
    // Expanded display: the completions, one record each.
    let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("relname | things"), "{out}");
    assert!(words.contains("quote_ident | label"), "{out}");
    assert!(words.contains("quote_ident | add1"), "{out}");
}

/// Roles and privileges as psql shows them: `\du` (roles, their
/// attributes and predefined roles), `\dn+` (the schema's), `\dL+` (the
/// language's), `\df+` (a function's owner and ACL) and `\dp`.
#[test]
fn psql_shows_roles_and_privileges() {
    let (_data, server) = QuiverServer::start_fresh();
    let out = psql(
        &server,
        &[
            "CREATE ROLE alice LOGIN",
            "GRANT pg_read_server_files TO alice",
            "GRANT CREATE ON SCHEMA public TO alice",
            "GRANT USAGE ON LANGUAGE wasm TO alice",
            "CREATE TABLE t (k bigint)",
            "GRANT SELECT ON t TO alice",
            "CREATE FUNCTION add1(bigint) RETURNS bigint LANGUAGE wasm AS '(module (func (export \"add1\") (param i64) (result i64) local.get 0 i64.const 1 i64.add))'",
            "REVOKE EXECUTE ON FUNCTION add1(bigint) FROM PUBLIC",
            "\\du",
            "\\dn+",
            "\\dL+",
            "\\df+",
            "\\dp t",
        ],
    );
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let has = |needle: &[&str]| {
        lines
            .iter()
            .any(|line| needle.iter().all(|part| line.contains(part)))
    };
    // \du: alice, who may log in, member of the predefined role; quiver,
    // the superuser (under trust) that made the table.
    assert!(has(&["alice", "{pg_read_server_files}"]), "{out}");
    assert!(has(&["quiver", "Superuser"]), "{out}");
    // \dn+: public, the superusers', USAGE for every role, CREATE for alice.
    assert!(
        has(&[
            "public",
            "pg_database_owner",
            "pg_database_owner=UC/pg_database_owner"
        ]),
        "{out}"
    );
    assert!(has(&["=U/pg_database_owner"]), "{out}");
    assert!(has(&["alice=C/pg_database_owner"]), "{out}");
    // \dL+: wasm, untrusted, USAGE granted to alice.
    assert!(has(&["wasm", "pg_database_owner", "| f "]), "{out}");
    assert!(has(&["alice=U/pg_database_owner"]), "{out}");
    // \df+: add1, owned by quiver, EXECUTE for its owner only.
    assert!(has(&["add1", "quiver", "quiver=X/quiver", "wasm"]), "{out}");
    // \dp: the table's ACL.
    assert!(has(&["t", "table", "quiver=arwdD/quiver"]), "{out}");
    assert!(has(&["alice=r/quiver"]), "{out}");
    server.stop();
}

/// The two bucket examples as a psql script: a bucket of rates
/// loaded with inline `COPY BUCKET` data, a function converting amounts
/// with it, a bucket of hits and a function counting them.
const BUCKET_EXAMPLES: &str = "CREATE BUCKET rates;\n\
         COPY BUCKET rates FROM STDIN (FORMAT csv);\n\
         EUR,1.08\n\
         GBP,1.27\n\
         \\.\n\
         CREATE FUNCTION to_usd(double precision, text) RETURNS double precision LANGUAGE wasm\n\
         \x20 SET quiver.wasm.keyvalue = 'rates:read' AS 'quiver_example_keyvalue.wasm', 'to_usd';\n\
         CREATE BUCKET hits;\n\
         CREATE FUNCTION hit(text) RETURNS bigint LANGUAGE wasm\n\
         \x20 SET quiver.wasm.keyvalue = 'hits:read-write' AS 'quiver_example_keyvalue.wasm', 'hit';\n";

/// The example through psql: a bucket loaded with inline `COPY
/// BUCKET` data, a function granted it that converts amounts, a counter
/// kept between statements; both survive a restart, and a `COPY BUCKET`
/// with a bad row stores none of its rows.
#[test]
fn psql_loads_a_bucket_that_functions_read_after_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("db");
    let server = QuiverServer::start(&dir);
    let script = data.path().join("rates.sql");
    std::fs::write(
        &script,
        format!(
            "{BUCKET_EXAMPLES}\
         \\pset format unaligned\n\
         SELECT to_usd(100, 'EUR') AS eur, to_usd(10, 'GBP') AS gbp, hit('home') AS hits;\n"
        ),
    )
    .expect("write script");
    let out = psql(&server, &[&format!("\\i {}", script.display())]);
    assert!(out.contains("COPY 2"), "the bucket is loaded: {out}");
    assert!(out.contains("eur|gbp|hits\n108|12.7|1\n"), "{out}");
    server.stop();

    let server = QuiverServer::start(&dir);
    let out = psql(
        &server,
        &[
            "\\pset format unaligned",
            "SELECT to_usd(100, 'EUR') AS eur, hit('home') AS hits",
            "SELECT name, keys FROM quiver.buckets ORDER BY name",
        ],
    );
    assert!(
        out.contains("eur|hits\n108|2\n"),
        "kept across the restart: {out}"
    );
    assert!(out.contains("name|keys\nhits|1\nrates|2\n"), "{out}");

    // A row with three fields: the copy fails and the bucket is unchanged.
    std::fs::write(
        &script,
        "COPY BUCKET rates FROM STDIN (FORMAT csv);\nJPY,0.0067\nCHF,0.9,extra\n\\.\n",
    )
    .expect("write script");
    let failed = run_psql(&server, &[&format!("\\i {}", script.display())]);
    assert!(
        !String::from_utf8_lossy(&failed.stderr).is_empty(),
        "the copy fails: {failed:?}"
    );
    let out = psql(
        &server,
        &["SELECT count(*) FROM quiver.bucket_values WHERE bucket = 'rates'"],
    );
    assert!(out.contains(" 2\n"), "no row of it was stored: {out}");
    server.stop();
}

/// The three examples through psql on a cluster of two executors:
/// a currency conversion reading a bucket, a per-key counter writing one,
/// a lookup file read once per instance. Their calls are counted where
/// they ran and gathered into `quiver.function_stats`, which keeps them
/// when the frontend is killed and started again.
#[test]
fn psql_runs_the_grant_examples_on_a_cluster_and_counts_their_calls() {
    let (data, mut cluster) = Cluster::start_fresh(2, Loss::Patient);
    let script = data.path().join("examples.sql");
    std::fs::write(
        &script,
        format!(
            "{BUCKET_EXAMPLES}\
         CREATE FUNCTION city(text, text) RETURNS text LANGUAGE wasm\n\
         \x20 SET quiver.wasm.files = 'testdata' AS 'quiver_example_keyvalue.wasm', 'lookup';\n\
         CREATE TABLE payments AS SELECT i AS id, CAST(i AS double precision) AS amount,\n\
         \x20 CASE WHEN i % 2 = 0 THEN 'EUR' ELSE 'GBP' END AS currency FROM generate_series(1, 1000) t(i);\n\
         CREATE TABLE visits AS SELECT i AS id, CASE WHEN i % 3 = 0 THEN 'Porto' ELSE 'Lisbon' END AS place\n\
         \x20 FROM generate_series(1, 30) t(i);\n\
         \\pset format unaligned\n\
         SELECT round(CAST(sum(to_usd(amount, currency)) AS numeric), 2) AS usd FROM payments;\n\
         SELECT city('/testdata/cities.csv', place) AS city, count(*) FROM visits GROUP BY 1 ORDER BY 1;\n\
         SELECT max(hit(place)) AS most FROM visits;\n"
        ),
    )
    .expect("write script");
    let out = psql(&cluster.frontend, &[&format!("\\i {}", script.display())]);
    // 500 even amounts at 1.08 and 500 odd ones at 1.27.
    let (even, odd): (Vec<f64>, Vec<f64>) =
        (1..=1000).map(f64::from).partition(|a| *a as i64 % 2 == 0);
    let usd = even.iter().sum::<f64>() * 1.08 + odd.iter().sum::<f64>() * 1.27;
    assert!(out.contains(&format!("usd\n{usd:.2}\n")), "{out}");
    assert!(
        out.contains("city|count\nPT,232000|10\nPT,545000|20\n"),
        "{out}"
    );
    assert!(out.contains("most\n20\n"), "each visit counted once: {out}");

    // Executors report once a second.
    let stats = "SELECT name, rows, errors, bucket_reads, bucket_writes, calls > 0 AS called \
                 FROM quiver.function_stats ORDER BY name";
    let expected = "name|rows|errors|bucket_reads|bucket_writes|called\n\
                    city|30|0|0|0|t\n\
                    hit|30|0|0|30|t\n\
                    to_usd|1000|0|1000|0|t\n";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = psql(&cluster.frontend, &["\\pset format unaligned", stats]);
        if out.contains(expected) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the executors' counts never arrived: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }

    cluster.restart_frontend();
    let out = psql(
        &cluster.frontend,
        &[
            "\\pset format unaligned",
            stats,
            "SELECT CAST(value AS text) AS hits FROM quiver.bucket_values WHERE bucket = 'hits' AND key = 'Lisbon'",
        ],
    );
    assert!(out.contains(expected), "kept across the restart: {out}");
    assert!(out.contains("hits\n20\n"), "{out}");
    cluster.stop();
}

/// The example transforms (examples/rust/transforms), as a user registers
/// and calls them.
const TRANSFORM_EXAMPLES: &str = "\
CREATE FUNCTION sessionize(TABLE, bigint) RETURNS TABLE LANGUAGE wasm AS 'quiver_example_transforms.wasm', 'sessionize';\n\
CREATE FUNCTION dedup(TABLE) RETURNS TABLE LANGUAGE wasm AS 'quiver_example_transforms.wasm', 'dedup';\n\
CREATE FUNCTION explode_json(TABLE, text) RETURNS TABLE LANGUAGE wasm AS 'quiver_example_transforms.wasm', 'explode_json';\n\
CREATE FUNCTION score(TABLE, text, double precision) RETURNS TABLE LANGUAGE wasm AS 'quiver_example_transforms.wasm', 'score';\n";

/// The four example transforms through psql on a cluster of two
/// executors: each as a Ballista job, the keyed ones in a stage of their
/// own after a shuffle by key, run by several tasks at once.
#[test]
fn psql_runs_the_transform_examples_on_a_cluster() {
    let (data, cluster) = Cluster::start_fresh(2, Loss::Patient);
    let script = data.path().join("transforms.sql");
    std::fs::write(
        &script,
        format!(
            "{TRANSFORM_EXAMPLES}\
         CREATE TABLE clicks AS SELECT i AS id, i % 100 AS user_id,\n\
         \x20 CAST(to_timestamp(1700000000 + (i * 7919) % 100000) AS timestamp) AS ts,\n\
         \x20 '[\"p' || CAST(i % 3 AS text) || '\", \"q\"]' AS pages FROM generate_series(1, 20000) t(i);\n\
         SET quiver.local_read_limit = 0;\n\
         \\pset format unaligned\n\
         SELECT count(*) AS clicks, max(session) AS most FROM sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, 1800);\n\
         SELECT count(*) AS firsts, sum(id) AS ids FROM dedup(TABLE clicks PARTITION BY user_id ORDER BY id);\n\
         SELECT item, count(*) FROM explode_json(TABLE (SELECT id, pages FROM clicks), 'pages') GROUP BY item ORDER BY item;\n\
         SELECT count(*) AS scored, sum(CAST(score > 0.5 AS int)) AS high FROM score(TABLE clicks, 'user_id:0.1', -5);\n\
         EXPLAIN SELECT count(*) FROM sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, 1800);\n"
        ),
    )
    .expect("write script");
    let out = psql(&cluster.frontend, &[&format!("\\i {}", script.display())]);
    // Sessions as SQL's window functions count them.
    let sessions = psql(
        &cluster.frontend,
        &[
            "\\pset format unaligned",
            "WITH w AS (SELECT *, lag(ts) OVER (PARTITION BY user_id ORDER BY ts) AS prev FROM clicks) \
             SELECT max(s) AS most FROM (SELECT sum(CASE WHEN prev IS NOT NULL AND ts - prev > INTERVAL '1800 seconds' THEN 1 ELSE 0 END) \
             OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) + 1 AS s FROM w) x",
        ],
    );
    let most = sessions
        .lines()
        .skip_while(|l| *l != "most")
        .nth(1)
        .expect("the window functions' answer");
    assert!(
        out.contains(&format!("clicks|most\n20000|{most}\n")),
        "{out}"
    );
    // The first click of user u is click u (user 0's is click 100).
    let ids: i64 = (1..100).sum::<i64>() + 100;
    assert!(out.contains(&format!("firsts|ids\n100|{ids}\n")), "{out}");
    assert!(
        out.contains("item|count\np0|6666\np1|6667\np2|6667\nq|20000\n"),
        "{out}"
    );
    // Users 51 to 99: 200 clicks each.
    assert!(out.contains("scored|high\n20000|9800\n"), "{out}");
    // Stage 1 shuffles the clicks by user; the transform runs in a later
    // stage, over that shuffle's partitions, one task each.
    let plan = out
        .split("distributed_plan")
        .nth(1)
        .expect("a distributed plan");
    let shuffle = plan.find("Hash([user_id").expect("a shuffle by user");
    let transform = plan.find("WasmTransformExec").expect("the transform");
    assert!(shuffle < transform, "{plan}");
    assert!(
        plan[transform..].contains("UnresolvedShuffleExec: stage=1, partitioning: Hash([user_id"),
        "{plan}"
    );
    cluster.stop();
}
