//! An S3-compatible server for the tests: moto's (`moto_server`, from PyPI;
//! `./dev test` installs it and names it in `QUIVER_MOTO_SERVER`).
//!
//! moto is the S3 implementation the AWS SDKs' own users test against; it
//! speaks the S3 REST API (signatures, multipart uploads, list v2) as a
//! plain process, installs in seconds from a wheel, and needs no Rust build
//! in a CI run whose time is counted.
//!
//! One server per test process, started on first use and stopped when the
//! process ends; every `quiver`
//! process the support module starts afterwards gets its address and
//! credentials in the standard `AWS_*` variables.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::netns::Host;

/// The test process's S3 server.
pub struct S3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    addr: String,
    /// The shell that stops the server once this process ends.
    _keeper: Child,
}

static SERVER: OnceLock<S3> = OnceLock::new();

/// The server, started on first use.
pub fn s3() -> &'static S3 {
    SERVER.get_or_init(S3::start)
}

/// The `AWS_*` variables of the server, if this process started one.
pub fn environment() -> Vec<(&'static str, String)> {
    SERVER.get().map(S3::environment).unwrap_or_default()
}

impl S3 {
    fn start() -> Self {
        Self::start_on(None)
    }

    /// A server of its own on `host` (port 9000 of its address), or on a
    /// free loopback port.
    pub fn start_on(host: Option<&Host>) -> Self {
        let moto = std::env::var("QUIVER_MOTO_SERVER").expect(
            "QUIVER_MOTO_SERVER names moto_server: run the tests with ./dev test, which installs it",
        );
        let (ip, port) = match host {
            Some(host) => (host.ip.clone(), 9000),
            None => ("127.0.0.1".to_string(), super::free_port()),
        };
        let addr = format!("{ip}:{port}");
        // Under a shell that waits on its standard input, a pipe only this
        // process writes: when the test process ends, the pipe closes and
        // the shell stops the server.
        let mut keeper = Command::new("sh");
        keeper
            .arg("-c")
            .arg(r#""$0" "$@" & read -r _; kill $!"#)
            .arg(&moto)
            .args(["-H", &ip, "-p", &port.to_string()]);
        if let Some(host) = host {
            keeper = host.run(&keeper);
        }
        let keeper = keeper
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{moto} does not start: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            endpoint: format!("http://{addr}"),
            addr,
            _keeper: keeper,
        }
    }

    /// The `AWS_*` variables that lead `object_store` to this server.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "quiver-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "quiver-test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Creates bucket `name`.
    pub fn create_bucket(&self, name: &str) {
        self.request("PUT", &format!("/{name}"), b"");
    }

    /// Stores `body` as object `key` of `bucket`.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.request("PUT", &format!("/{bucket}/{key}"), body);
    }

    /// The keys in `bucket` under `prefix` (ListObjectsV2, the first 1000).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let listing = self.request(
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}"),
            b"",
        );
        listing
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
            .collect()
    }

    /// One HTTP/1.1 request (moto checks no signatures); returns the body.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> String {
        let mut stream = TcpStream::connect(&self.addr).expect("moto_server listens");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("request");
        stream.write_all(body).expect("request body");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let status = response.lines().next().unwrap_or_default().to_string();
        assert!(
            status.contains(" 200 "),
            "{method} {path}: {status}\n{response}"
        );
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default()
    }
}
