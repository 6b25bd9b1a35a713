//! A protocol fuzzer: valid sessions of frontend messages, mutated (bits
//! flipped, lengths lied about, bytes cut off or inserted, messages out of
//! order), each sent on its own connection. After each one the server must
//! close the connection once the client has stopped writing — never hang —
//! and a fresh connection must still answer.
//!
//! `QUIVER_FUZZ_CONNECTIONS` (default 400, a few thousand messages) and
//! `QUIVER_FUZZ_SEED` choose the run; a longer one:
//! `QUIVER_FUZZ_CONNECTIONS=20000 cargo nextest run --test e2e fuzz`.

use std::time::Duration;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{QuiverServer, one};

/// One frontend message: its type byte (none for startup-phase messages)
/// and body.
#[derive(Clone)]
struct Message {
    tag: Option<u8>,
    body: Vec<u8>,
}

impl Message {
    fn new(tag: u8, body: Vec<u8>) -> Self {
        Self {
            tag: Some(tag),
            body,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend(self.tag);
        out.extend(((self.body.len() + 4) as i32).to_be_bytes());
        out.extend(&self.body);
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn startup() -> Message {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for part in ["user", "quiver", "database", "quiver", ""] {
        body.extend(cstr(part));
    }
    Message { tag: None, body }
}

fn query(sql: &str) -> Message {
    Message::new(b'Q', cstr(sql))
}

fn parse(name: &str, sql: &str, types: &[i32]) -> Message {
    let mut body = cstr(name);
    body.extend(cstr(sql));
    body.extend((types.len() as i16).to_be_bytes());
    for oid in types {
        body.extend(oid.to_be_bytes());
    }
    Message::new(b'P', body)
}

fn bind(statement: &str, params: &[Option<&[u8]>], binary: bool) -> Message {
    let mut body = cstr("");
    body.extend(cstr(statement));
    body.extend(1i16.to_be_bytes());
    body.extend(i16::from(binary).to_be_bytes());
    body.extend((params.len() as i16).to_be_bytes());
    for param in params {
        match param {
            Some(value) => {
                body.extend((value.len() as i32).to_be_bytes());
                body.extend(*value);
            }
            None => body.extend((-1i32).to_be_bytes()),
        }
    }
    body.extend(1i16.to_be_bytes());
    body.extend(i16::from(binary).to_be_bytes());
    Message::new(b'B', body)
}

fn describe(kind: u8, name: &str) -> Message {
    let mut body = vec![kind];
    body.extend(cstr(name));
    Message::new(b'D', body)
}

fn execute(max_rows: i32) -> Message {
    let mut body = cstr("");
    body.extend(max_rows.to_be_bytes());
    Message::new(b'E', body)
}

fn sync() -> Message {
    Message::new(b'S', Vec::new())
}

/// Valid sessions after the startup message.
fn sessions() -> Vec<Vec<Message>> {
    let int4 = 23;
    vec![
        vec![query("SELECT 1")],
        vec![query("SELECT v, s FROM f WHERE v > 1 ORDER BY v")],
        vec![query("BEGIN; SELECT count(*) FROM f; COMMIT")],
        vec![
            parse("s", "SELECT $1::int + v FROM f", &[int4]),
            bind("s", &[Some(&7i32.to_be_bytes())], true),
            describe(b'P', ""),
            execute(0),
            sync(),
        ],
        vec![
            parse("", "SELECT $1::text", &[]),
            bind("", &[Some(b"hello")], false),
            execute(1),
            sync(),
            describe(b'S', ""),
            sync(),
        ],
        vec![
            parse("", "SELECT array_length($1::int[], 1)", &[1007]),
            bind("", &[Some(b"{1,2,3}")], false),
            execute(0),
            sync(),
        ],
        vec![
            query("COPY f FROM STDIN"),
            Message::new(b'd', b"9\tnine\n".to_vec()),
            Message::new(b'c', Vec::new()),
        ],
        vec![
            query("COPY f FROM STDIN"),
            Message::new(b'f', cstr("client gave up")),
        ],
        vec![query("COPY f TO STDOUT")],
        vec![Message::new(b'H', Vec::new()), query("SHOW server_version")],
        vec![
            parse("c", "SELECT 2", &[]),
            Message::new(b'C', {
                let mut body = vec![b'S'];
                body.extend(cstr("c"));
                body
            }),
            sync(),
        ],
    ]
}

/// Lengths a liar might send.
const LENGTHS: [i32; 8] = [0, 3, 4, -1, i32::MIN, i32::MAX, 0x3fff_ffff, 10_001];

/// `messages`, encoded and mutated one or more ways.
fn mutate(rng: &mut ChaCha8Rng, mut messages: Vec<Message>) -> Vec<u8> {
    // Out of order: swap, drop or repeat messages.
    if rng.random_bool(0.3) && messages.len() > 1 {
        let (a, b) = (
            rng.random_range(0..messages.len()),
            rng.random_range(0..messages.len()),
        );
        match rng.random_range(0..3) {
            0 => messages.swap(a, b),
            1 => {
                messages.remove(a);
            }
            _ => {
                let copy = messages[a].clone();
                messages.insert(b, copy);
            }
        }
    }
    let mut starts = Vec::new();
    let mut bytes = Vec::new();
    for message in &messages {
        starts.push((bytes.len(), message.tag.is_some()));
        message.encode(&mut bytes);
    }
    for _ in 0..rng.random_range(1..=3) {
        let Some(&(start, tagged)) = starts.choose(rng) else {
            break;
        };
        // An earlier mutation may have cut the message off.
        if start + 5 > bytes.len() {
            continue;
        }
        match rng.random_range(0..6) {
            // Bit flips anywhere.
            0 => {
                for _ in 0..rng.random_range(1..=8) {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] ^= 1 << rng.random_range(0..8);
                }
            }
            // A length field that lies.
            1 => {
                let at = start + usize::from(tagged);
                let length = if rng.random_bool(0.5) {
                    *LENGTHS.choose(rng).expect("lengths")
                } else {
                    rng.random()
                };
                bytes[at..at + 4].copy_from_slice(&length.to_be_bytes());
            }
            // Cut off.
            2 => bytes.truncate(rng.random_range(0..bytes.len())),
            // Garbage between messages.
            3 => {
                let garbage: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
                bytes.splice(start..start, garbage);
            }
            // Another message type.
            4 if tagged => bytes[start] = rng.random(),
            // A count inside a body made huge.
            _ => {
                if bytes.len() > start + 8 {
                    let at = rng.random_range(start + 5..bytes.len() - 1);
                    bytes[at] = 0x7f;
                    bytes[at + 1] = 0xff;
                }
            }
        }
        if bytes.is_empty() {
            break;
        }
    }
    bytes
}

/// Sends `bytes`, stops writing, and reads until the server closes.
/// Returns whether it closed within `limit`.
async fn send(addr: &str, bytes: &[u8], limit: Duration) -> bool {
    let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let _ = socket.write_all(bytes).await;
    let _ = socket.shutdown().await;
    let mut sink = vec![0u8; 64 * 1024];
    tokio::time::timeout(limit, async {
        loop {
            match socket.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn mutated_wire_messages_never_end_or_hang_the_server() {
    let connections: usize = std::env::var("QUIVER_FUZZ_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("QUIVER_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0f0f_2026);
    let (_data, server) = QuiverServer::start_fresh();
    let setup = server.connect().await;
    setup
        .batch_execute(
            "CREATE TABLE f (v int, s text); INSERT INTO f VALUES (1, 'one'), (2, 'two')",
        )
        .await
        .expect("setup");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sessions = sessions();
    let mut messages = 0;
    let mut hung = Vec::new();
    for case in 0..connections {
        let mut session = vec![startup()];
        session.extend(sessions.choose(&mut rng).expect("sessions").clone());
        messages += session.len();
        let bytes = mutate(&mut rng, session);
        if !send(&server.addr, &bytes, Duration::from_secs(15)).await {
            hung.push(case);
        }
        let answered = tokio::time::timeout(Duration::from_secs(30), async {
            let fresh = server.connect().await;
            one(&fresh, "SELECT 1").await
        })
        .await;
        assert!(
            answered.is_ok_and(|v| v.as_deref() == Some("1")),
            "the server stopped answering after case {case} (seed {seed}): {bytes:?}"
        );
    }
    assert!(
        hung.is_empty(),
        "connections left open after the client stopped writing (seed {seed}): cases {hung:?}"
    );
    // The session open throughout is unharmed too.
    assert_eq!(
        one(&setup, "SELECT count(*) > 0 FROM f").await.as_deref(),
        Some("t")
    );
    eprintln!("fuzz: {messages} messages over {connections} connections (seed {seed}), none hung");
    drop(setup);
    server.stop();
}

/// Sends `bytes` after a good startup and returns everything the server
/// sent back after its first ReadyForQuery, up to closing the connection
/// (`None` if it did not close within ten seconds).
async fn after_startup(addr: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut socket = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut hello = Vec::new();
    startup().encode(&mut hello);
    socket.write_all(&hello).await.ok()?;
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let ready = b"Z\0\0\0\x05I";
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        while !received.windows(ready.len()).any(|w| w == ready) {
            let n = socket.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            received.extend(&chunk[..n]);
        }
        let start = received
            .windows(ready.len())
            .position(|w| w == ready)
            .expect("seen")
            + ready.len();
        let mut answer = received.split_off(start);
        socket.write_all(bytes).await.ok()?;
        loop {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return Some(answer),
                Ok(n) => answer.extend(&chunk[..n]),
            }
        }
    })
    .await;
    answer.ok().flatten()
}

/// Bytes that are not a message are answered as PostgreSQL answers them: a
/// FATAL protocol_violation (08P01) error, then the connection closes. The
/// server goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn bytes_that_are_no_message_get_08p01_and_a_closed_connection() {
    let (_data, server) = QuiverServer::start_fresh();
    let cases: [(&str, Vec<u8>); 3] = [
        ("an unknown message type", {
            let mut bytes = Vec::new();
            Message::new(b'y', b"abc".to_vec()).encode(&mut bytes);
            bytes
        }),
        ("a length beyond the protocol's limit", {
            let mut bytes = vec![b'Q'];
            bytes.extend(0x7fff_fff0i32.to_be_bytes());
            bytes
        }),
        // pgwire's decoder panics on it (docs/upstream.md #20).
        ("a Bind cut short", {
            let mut bytes = Vec::new();
            Message::new(b'B', vec![0]).encode(&mut bytes);
            sync().encode(&mut bytes);
            bytes
        }),
    ];
    for (what, bytes) in cases {
        let answer = after_startup(&server.addr, &bytes)
            .await
            .unwrap_or_else(|| panic!("{what}: the connection did not close"));
        assert_eq!(answer.first(), Some(&b'E'), "{what}: {answer:?}");
        let fields = String::from_utf8_lossy(&answer);
        assert!(
            fields.contains("SFATAL\0") && fields.contains("C08P01\0"),
            "{what}: {fields:?}"
        );
    }
    let fresh = server.connect().await;
    assert_eq!(one(&fresh, "SELECT 1").await.as_deref(), Some("1"));
    server.stop();
}
