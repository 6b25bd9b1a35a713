//! TLS with a configured certificate, checked with the real psql (libpq):
//! `sslmode=require` gets an encrypted session, `verify-full` accepts the
//! server's certificate signed by a test CA and refuses one it cannot verify.

use std::path::Path;
use std::process::Command;

use crate::support::QuiverServer;

/// Runs `openssl` with `args` in `dir`; it must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (./dev test installs it)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`name`-ca.crt) and a server certificate it signed for localhost
/// and 127.0.0.1 (`name`.crt, `name`.key).
fn certificates(dir: &Path, name: &str) {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.crt");
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let cert = format!("{name}.crt");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-subj",
            "/CN=Quiver test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            &cert,
        ],
    );
}

fn psql(server: &QuiverServer, conninfo: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-X", "-At", "-d"])
        .arg(format!(
            "host=localhost port={} user=quiver dbname=quiver {conninfo}",
            server.port()
        ))
        .args(["-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs")
}

#[test]
fn tls_require_and_verify_full() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path();
    certificates(dir, "server");
    certificates(dir, "other");
    let cert = dir.join("server.crt").display().to_string();
    let key = dir.join("server.key").display().to_string();
    let server =
        QuiverServer::start_with(&dir.join("db"), &["--tls-cert", &cert, "--tls-key", &key]);

    // sslmode=require: encrypted, certificate not checked.
    let out = psql(&server, "sslmode=require", "\\conninfo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SSL connection"), "{stdout}");

    // verify-full with the CA that signed the certificate.
    let root = format!("sslrootcert={}", dir.join("server-ca.crt").display());
    let out = psql(
        &server,
        &format!("sslmode=verify-full {root}"),
        "SELECT 40 + 2",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");

    // verify-full with a CA that did not sign it: refused by the client.
    let other = format!("sslrootcert={}", dir.join("other-ca.crt").display());
    let out = psql(&server, &format!("sslmode=verify-full {other}"), "SELECT 1");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate verify failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Plain connections still work.
    let out = psql(&server, "sslmode=disable", "SELECT 1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unusable_tls_files_stop_the_server_with_a_clear_error() {
    let data = tempfile::tempdir().expect("tempdir");
    let missing = data.path().join("missing.crt");
    let output = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("db"))
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing)
        .output()
        .expect("quiver runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TLS: cannot use"), "{stderr}");
}
