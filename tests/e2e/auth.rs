//! SCRAM-SHA-256 authentication with real clients: users from a users file
//! and from `CREATE ROLE ... PASSWORD` (kept across restarts); a wrong
//! password, an unknown user or no password fail with 28P01.

use std::process::Command;
use std::time::Duration;

use crate::support::{QuiverServer, connect_to, one};

fn conninfo(server: &QuiverServer, user: &str, password: &str) -> String {
    format!("{} password='{password}'", server.conninfo_as(user))
}

async fn connect(
    server: &QuiverServer,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    connect_to(&conninfo(server, user, password)).await
}

async fn refused(server: &QuiverServer, user: &str, password: &str) {
    let error = connect(server, user, password)
        .await
        .err()
        .unwrap_or_else(|| panic!("{user}/{password} was let in"));
    assert_eq!(
        error.code().map(|c| c.code()),
        Some("28P01"),
        "{user}/{password}: {error}"
    );
}

fn start(data: &std::path::Path, users: &std::path::Path) -> QuiverServer {
    use std::os::unix::fs::PermissionsExt;
    // The server refuses a users file others may read.
    std::fs::set_permissions(users, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let users = users.display().to_string();
    QuiverServer::start_with(data, &["--auth", "scram-sha-256", "--users", &users])
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_logins_from_the_users_file_and_create_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    std::fs::write(&users, "# name:password\nalice:wonderland\n").expect("users file");
    let db = dir.path().join("db");
    let server = start(&db, &users);

    let alice = connect(&server, "alice", "wonderland")
        .await
        .expect("alice logs in");
    assert_eq!(one(&alice, "SELECT 40 + 2").await.as_deref(), Some("42"));
    refused(&server, "alice", "wrong").await;
    refused(&server, "mallory", "wonderland").await;
    refused(&server, "alice", "").await;

    // Roles made with SQL.
    alice
        .batch_execute("CREATE ROLE bob WITH LOGIN PASSWORD 'builder'")
        .await
        .expect("create role");
    let error = alice
        .batch_execute("CREATE ROLE bob PASSWORD 'again'")
        .await
        .expect_err("exists");
    assert_eq!(error.code().map(|c| c.code()), Some("42710"));
    let bob = connect(&server, "bob", "builder")
        .await
        .expect("bob logs in");
    assert_eq!(one(&bob, "SELECT 1").await.as_deref(), Some("1"));
    // Each session names the role it logged in as.
    const WHO: &str = "SELECT current_user || session_user || user || current_role";
    assert_eq!(one(&bob, WHO).await.as_deref(), Some("bobbobbobbob"));
    assert_eq!(
        one(&alice, WHO).await.as_deref(),
        Some("alicealicealicealice")
    );
    alice
        .batch_execute("ALTER ROLE bob WITH PASSWORD 'rebuilt'")
        .await
        .expect("alter role");
    refused(&server, "bob", "builder").await;
    // A role without LOGIN (CREATE ROLE's default) is turned away, its
    // password right or not.
    alice
        .batch_execute("CREATE ROLE carol PASSWORD 'tables'")
        .await
        .expect("create role");
    let error = connect(&server, "carol", "tables")
        .await
        .expect_err("carol may not log in");
    assert_eq!(error.code().map(|c| c.code()), Some("28000"), "{error}");
    assert_eq!(
        error.as_db_error().map(|e| e.message()),
        Some("role \"carol\" is not permitted to log in")
    );
    // bob is no superuser: he may not make roles, nor give himself SUPERUSER.
    for sql in ["CREATE ROLE dave", "ALTER ROLE bob SUPERUSER"] {
        let error = bob.batch_execute(sql).await.expect_err("not a superuser");
        assert_eq!(error.code().map(|c| c.code()), Some("42501"), "{sql}");
    }
    connect(&server, "bob", "rebuilt")
        .await
        .expect("new password");

    // Cancelling works for authenticated sessions too.
    let token = bob.cancel_token();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = token.cancel_query(tokio_postgres::NoTls).await;
    });
    let error = bob
        .simple_query("SELECT count(*) FROM (SELECT 1 FROM generate_series(1, 1000000000000)) v")
        .await
        .expect_err("cancelled");
    assert_eq!(error.code().map(|c| c.code()), Some("57014"), "{error}");

    // psql (libpq) logs in with a password, and is refused a wrong one.
    let port = server.port().to_string();
    let psql = |password: &str| {
        Command::new("psql")
            .args([
                "-X",
                "-At",
                "-h",
                server.host(),
                "-p",
                &port,
                "-U",
                "bob",
                "-d",
                "quiver",
            ])
            .args(["-c", "SELECT 'in'"])
            .env("PGPASSWORD", password)
            .output()
            .expect("psql runs")
    };
    let out = psql("rebuilt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "in");
    let out = psql("nope");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("password authentication failed for user \"bob\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop((alice, bob));

    // Roles made with SQL survive a restart; DROP ROLE removes them.
    server.stop();
    let server = start(&db, &users);
    let alice = connect(&server, "alice", "wonderland")
        .await
        .expect("alice");
    connect(&server, "bob", "rebuilt")
        .await
        .expect("bob after a restart");
    alice
        .batch_execute("DROP ROLE bob")
        .await
        .expect("drop role");
    refused(&server, "bob", "rebuilt").await;
    let error = alice
        .batch_execute("DROP ROLE bob")
        .await
        .expect_err("gone");
    assert_eq!(error.code().map(|c| c.code()), Some("42704"));
    alice
        .batch_execute("DROP ROLE IF EXISTS bob")
        .await
        .expect("if exists");
}

/// Under trust, a client names its role: a name no role has is the
/// bootstrap superuser, a role's name gets that role's attributes.
#[tokio::test(flavor = "multi_thread")]
async fn trusted_logins_take_the_attributes_of_the_role_they_name() {
    let (_data, server) = QuiverServer::start_fresh();
    let bootstrap = server.connect().await;
    bootstrap
        .batch_execute("CREATE ROLE plain LOGIN; CREATE ROLE hidden")
        .await
        .expect("roles");
    let login = |user: &str| {
        let conninfo = server.conninfo_as(user);
        async move { connect_to(&conninfo).await }
    };
    let plain = login("plain").await.expect("plain logs in");
    assert_eq!(
        one(&plain, "SHOW is_superuser").await.as_deref(),
        Some("off")
    );
    assert_eq!(
        one(&bootstrap, "SHOW is_superuser").await.as_deref(),
        Some("on")
    );
    // Nor may a session an ordinary role logged in to act as another.
    for sql in [
        "CREATE ROLE sneaky SUPERUSER",
        "SET SESSION AUTHORIZATION quiver",
    ] {
        let error = plain.batch_execute(sql).await.expect_err("not a superuser");
        assert_eq!(error.code().map(|c| c.code()), Some("42501"), "{sql}");
    }
    // An ordinary role makes tables once granted CREATE on the schema, as
    // in PostgreSQL 15.
    let error = plain
        .batch_execute("CREATE TABLE mine (k BIGINT)")
        .await
        .expect_err("no CREATE on public");
    assert_eq!(error.code().map(|c| c.code()), Some("42501"), "{error}");
    bootstrap
        .batch_execute("GRANT CREATE ON SCHEMA public TO plain")
        .await
        .expect("grant");
    plain
        .batch_execute("CREATE TABLE mine (k BIGINT); INSERT INTO mine VALUES (1)")
        .await
        .expect("plain creates and fills its table");
    let error = login("hidden").await.expect_err("NOLOGIN");
    assert_eq!(error.code().map(|c| c.code()), Some("28000"), "{error}");
}

#[test]
fn a_users_file_others_may_read_stops_the_server() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    std::fs::write(&users, "alice:wonderland\n").expect("users file");
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--auth",
            "scram-sha-256",
            "--data-dir",
        ])
        .arg(dir.path().join("db"))
        .arg("--users")
        .arg(&users)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("quiver runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().expect("kill");
            panic!("the server started with a users file others may read");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(stderr.contains("group or world access"), "{stderr}");
}
