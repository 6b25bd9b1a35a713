//! Machines for the tests: network namespaces, made and removed by the test,
//! each with one veth link to a switch (a bridge in a namespace of its own).
//! A process started on a [`Host`] sees only its link's address and its own
//! loopback; the test process reaches the hosts through a link of its own
//! (the switch's first address). Cutting a host's link (`ip link set down`
//! on the switch side) parts it from every other host mid-conversation:
//! packets vanish, nothing is refused, as when a machine's cable is pulled.

use std::process::{Command, Stdio};

/// The switch and the hosts on it, removed with their processes' links on
/// drop.
pub struct Network {
    /// Names start with it: `<prefix>-sw`, `<prefix>-<host>`, `<prefix>v<n>`.
    prefix: String,
    /// `10.N.M`: host `n` is `10.N.M.(10+n)`, the test process `10.N.M.1`.
    subnet: String,
    namespaces: Vec<String>,
}

/// One machine: a namespace and its address.
#[derive(Clone, Debug)]
pub struct Host {
    pub namespace: String,
    pub ip: String,
    /// The switch's end of its link.
    link: String,
}

/// Runs `ip ARGS`, returning its error output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip cannot run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Network {
    /// A switch, and a link to it for the test process; `Err` says why the
    /// machine does not allow it (no `ip`, no CAP_NET_ADMIN, namespaces
    /// forbidden).
    pub fn create() -> Result<Self, String> {
        // Networks are numbered, and a number is taken by creating its
        // switch's namespace, which fails if another test process has it:
        // two networks of one subnet would route each other's packets (a
        // number from the pid alone was shared by pids 25,000 apart).
        const NUMBERS: usize = 25_000;
        let start = std::process::id() as usize;
        let (network, switch) = (0..NUMBERS)
            .find_map(|i| {
                let n = (start + i) % NUMBERS;
                let mut network = Self {
                    prefix: format!("qn{n}"),
                    subnet: format!("10.{}.{}", 100 + n % 100, n / 100),
                    namespaces: Vec::new(),
                };
                match network.namespace("sw") {
                    Ok(switch) => Some(Ok((network, switch))),
                    Err(e) if e.contains("exists") => None,
                    Err(e) => Some(Err(e)),
                }
            })
            .unwrap_or_else(|| Err("every network number is taken".to_string()))?;
        let client = format!("{}c", network.prefix);
        let client_peer = format!("{}vc", network.prefix);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        ip(&[
            "link",
            "add",
            &client,
            "type",
            "veth",
            "peer",
            "name",
            &client_peer,
            "netns",
            &switch,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", network.subnet),
            "dev",
            &client,
        ])?;
        ip(&["link", "set", &client, "up"])?;
        ip(&[
            "-n",
            &switch,
            "link",
            "set",
            &client_peer,
            "master",
            "br0",
            "up",
        ])?;
        Ok(network)
    }

    /// Adds namespace `<prefix>-<name>` (removed on drop), loopback up.
    fn namespace(&mut self, name: &str) -> Result<String, String> {
        let namespace = format!("{}-{name}", self.prefix);
        ip(&["netns", "add", &namespace])?;
        self.namespaces.push(namespace.clone());
        ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// A new host on the switch.
    pub fn host(&mut self, name: &str) -> Host {
        let index = self.namespaces.len();
        let namespace = self.namespace(name).expect("namespace");
        let switch = self.namespaces[0].clone();
        let link = format!("{}v{index}", self.prefix);
        let ip_address = format!("{}.{}", self.subnet, 10 + index);
        let steps: [&[&str]; 4] = [
            &[
                "-n", &switch, "link", "add", &link, "type", "veth", "peer", "name", "eth0",
                "netns", &namespace,
            ],
            &["-n", &switch, "link", "set", &link, "master", "br0", "up"],
            &[
                "-n",
                &namespace,
                "addr",
                "add",
                &format!("{ip_address}/24"),
                "dev",
                "eth0",
            ],
            &["-n", &namespace, "link", "set", "eth0", "up"],
        ];
        for step in steps {
            ip(step).expect("link");
        }
        Host {
            namespace,
            ip: ip_address,
            link,
        }
    }

    /// Pulls `host`'s cable: its link goes down at the switch.
    pub fn cut(&self, host: &Host) {
        ip(&["-n", &self.namespaces[0], "link", "set", &host.link, "down"]).expect("cut");
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Links go with their namespaces; the test process's end of its
        // link goes with its peer in the switch.
        for namespace in self.namespaces.iter().rev() {
            let _ = ip(&["netns", "delete", namespace]);
        }
    }
}

impl Host {
    /// `command`, run inside this host's namespace (`ip netns exec`, which
    /// execs it: the child's pid is the command's).
    pub fn run(&self, command: &Command) -> Command {
        let mut inside = Command::new("ip");
        inside
            .args(["netns", "exec", &self.namespace])
            .arg(command.get_program())
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => inside.env(key, value),
                None => inside.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            inside.current_dir(dir);
        }
        inside
    }
}

/// A Quiver cluster over hosts: the scheduler, each executor and the
/// frontend on a host of their own, every service bound to its host's
/// address only.
pub struct HostedCluster {
    scheduler: Option<std::process::Child>,
    executors: Vec<Option<std::process::Child>>,
    /// The executors' hosts, by index.
    pub executor_hosts: Vec<Host>,
    pub frontend: super::QuiverServer,
    _work: tempfile::TempDir,
}

/// The scheduler's port on its host.
const SCHEDULER_PORT: u16 = 50050;

impl HostedCluster {
    /// Starts the cluster on new hosts of `network`, every process with the
    /// variables `env`, the frontend with its data directory at the
    /// object-store URL `data` (its catalog in a local directory of its
    /// own) and `frontend_flags` more; an executor is declared lost after
    /// `loss_seconds` without a heartbeat.
    pub fn start(
        network: &mut Network,
        executors: usize,
        loss_seconds: u32,
        env: &[(&str, String)],
        data: &str,
        frontend_flags: &[&str],
    ) -> Self {
        let work = tempfile::tempdir().expect("tempdir");
        let scheduler_host = network.host("sched");
        let scheduler_addr = format!("{}:{SCHEDULER_PORT}", scheduler_host.ip);
        let loss = loss_seconds.to_string();
        let mut command = scheduler_host.run(&super::quiver(&[
            "scheduler",
            "--listen",
            &scheduler_addr,
            "--executor-timeout",
            &loss,
            "--no-executors-grace",
            &loss,
        ]));
        command
            .envs(env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let (scheduler, _) = super::spawn_until(command, "quiver: scheduler listening on ");
        // The scheduler, then the executors: killed if a later step panics.
        let mut started = Started(vec![Some(scheduler)]);
        let mut executor_hosts = Vec::new();
        for index in 0..executors {
            let host = network.host(&format!("ex{index}"));
            let mut command = host.run(&super::quiver(&[
                "executor",
                "--scheduler",
                &scheduler_addr,
                "--bind",
                &host.ip,
                "--port",
                "50051",
                "--grpc-port",
                "50052",
                "--slots",
                "1",
                "--heartbeat",
                "1",
            ]));
            command
                .arg("--work-dir")
                .arg(work.path().join(format!("executor-{index}")))
                .envs(env.iter().cloned())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let (child, _) = super::spawn_until(command, "quiver: executor ");
            started.0.push(Some(child));
            // Its Flight port opens once it has registered.
            super::wait_for_port(&format!("{}:50051", host.ip));
            executor_hosts.push(host);
        }
        let frontend_host = network.host("front");
        let listen = format!("{}:5433", frontend_host.ip);
        let data_dir = work.path().join("catalog");
        let catalog_dir = data_dir.display().to_string();
        // Only the hosts on this test's switch can reach it.
        let mut flags = vec![
            "--scheduler",
            &scheduler_addr,
            "--local-read-limit-kb",
            "0",
            "--trust-remote-clients",
            "--data-dir",
            data,
            "--catalog-dir",
            &catalog_dir,
        ];
        flags.extend_from_slice(frontend_flags);
        let mut command =
            frontend_host.run(&super::QuiverServer::command_on(&listen, &data_dir, &flags));
        command
            .envs(env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let frontend = super::QuiverServer::spawn(command, &data_dir);
        let mut children = std::mem::take(&mut started.0).into_iter();
        Self {
            scheduler: children.next().flatten(),
            executors: children.collect(),
            executor_hosts,
            frontend,
            _work: work,
        }
    }

    /// Stops every process with SIGTERM, frontend first.
    pub fn stop(mut self) {
        super::stop_cluster(&mut self.frontend, &mut self.executors, &mut self.scheduler);
    }

    /// Kills executor `index` outright (one whose link was cut cannot be
    /// asked to stop).
    pub fn kill_executor(&mut self, index: usize) {
        super::kill_all([&mut self.executors[index]]);
    }
}

/// Processes of a cluster being started, killed on drop: a start that
/// panics half-way (a port that never opens) leaves nothing running.
struct Started(Vec<Option<std::process::Child>>);

impl Drop for Started {
    fn drop(&mut self) {
        super::kill_all(self.0.iter_mut());
    }
}

impl Drop for HostedCluster {
    fn drop(&mut self) {
        super::kill_all(self.executors.iter_mut().chain([&mut self.scheduler]));
    }
}
