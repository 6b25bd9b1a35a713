//! Guests that try to hang, exhaust memory, overflow the stack, flood
//! stdout, or reach outside the sandbox. Quiver must turn each into a SQL
//! error (or a harmless answer) in bounded time.

use std::hint::black_box;

quiver_udf::functions! {
    /// Never returns.
    fn spin(x: i64) -> i64 {
        let mut n = x;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }

    /// Allocates until something stops it.
    fn hog(x: i64) -> i64 {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            blocks.push(black_box(vec![1u8; 1 << 20]));
            if blocks.len() == usize::MAX {
                return x;
            }
        }
    }

    /// Recurses without end.
    fn recurse(x: i64) -> i64 {
        black_box(recurse(black_box(x + 1))) + 1
    }

    /// Panics (a trap) with a message.
    fn boom(x: i64) -> i64 {
        if x >= 0 {
            panic!("boom at {x}");
        }
        x
    }

    /// Writes to stdout without end.
    fn chatter(x: i64) -> i64 {
        loop {
            println!("{x}: all work and no play makes Jack a dull boy");
        }
    }

    /// Tries to read a file of the host.
    fn read_file(path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
    }

    /// Tries to open a TCP connection to 127.0.0.1:`port` through
    /// wasi:sockets (Rust's std has no sockets on this toolchain).
    fn connect(port: i32) -> Result<String, String> {
        use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
        let network = wasip2::sockets::instance_network::instance_network();
        let socket = wasip2::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
            .map_err(|e| format!("cannot create a socket: {e:?}"))?;
        let address = IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port: port as u16,
            address: (127, 0, 0, 1),
        });
        socket
            .start_connect(&network, address)
            .map_err(|e| format!("cannot connect to port {port}: {e:?}"))?;
        socket.subscribe().block();
        socket
            .finish_connect()
            .map(|_| "connected".to_string())
            .map_err(|e| format!("cannot connect to port {port}: {e:?}"))
    }

    /// Tries everything a definition can grant, and the rest of WASI, and
    /// says what it got: `keyvalue=denied files=denied sockets=denied
    /// env=0 args=0 clock=yes random=yes` for a function granted nothing.
    fn probe(bucket: &str) -> String {
        let got = |ok: bool| if ok { "yes" } else { "denied" };
        let keyvalue = got(quiver_udf::keyvalue::open(bucket).is_ok());
        let files = got(std::fs::read_dir("/testdata").is_ok() || std::fs::read_dir("/").is_ok());
        let sockets = got(
            wasip2::sockets::tcp_create_socket::create_tcp_socket(
                wasip2::sockets::network::IpAddressFamily::Ipv4,
            )
            .is_ok_and(|socket| {
                let network = wasip2::sockets::instance_network::instance_network();
                let address = wasip2::sockets::network::IpSocketAddress::Ipv4(
                    wasip2::sockets::network::Ipv4SocketAddress {
                        port: 5432,
                        address: (127, 0, 0, 1),
                    },
                );
                socket.start_connect(&network, address).is_ok()
            }),
        );
        let env = std::env::vars().count();
        let args = std::env::args().count();
        let clock = got(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok_and(|d| d.as_secs() > 0));
        let random = got(wasip2::random::random::get_random_bytes(8).len() == 8);
        format!("keyvalue={keyvalue} files={files} sockets={sockets} env={env} args={args} clock={clock} random={random}")
    }

    /// Counts the environment variables it can see.
    fn env_count(x: i64) -> i64 {
        x + std::env::vars().count() as i64
    }

    // An aggregate whose state grows without bound: 64 KiB per row.
    @aggregate hoard(x: i64) = Hoard;

    // A table function that never ends.
    @table forever() -> (n: i64) {
        (0i64..).map(|n| (n,))
    }

    // A table function that never produces its first row.
    @table stuck() -> (n: i64) {
        std::iter::from_fn(|| loop {
            std::hint::spin_loop();
        })
        .map(|n: i64| (n,))
    }
}

#[derive(Default)]
struct Hoard(Vec<Vec<u8>>);

impl quiver_udf::Aggregate for Hoard {
    type Input<'a> = i64;
    type Output = i64;
    fn update(&mut self, x: i64) {
        self.0.push(vec![x as u8; 64 << 10]);
    }
    fn merge(&mut self, other: Self) {
        self.0.extend(other.0);
    }
    fn finish(&self) -> i64 {
        self.0.len() as i64
    }
    fn save(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.0.len() as u64).to_le_bytes());
    }
    fn load(bytes: &[u8]) -> Result<Self, String> {
        let n = u64::from_le_bytes(bytes.try_into().map_err(|_| "bad state")?);
        Ok(Hoard(vec![Vec::new(); n as usize]))
    }
}
