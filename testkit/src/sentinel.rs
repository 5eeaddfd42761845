//! A Sentinel-managed master/replica pair, for failover tests.
//!
//! Start-up waits until the topology is fully *known* (every sentinel sees the
//! master, the replica and both peers), not merely until processes answer: a
//! failover test that kills the master before the sentinels have met would wait
//! forever for a quorum that can't form.

use std::collections::HashMap;
use std::time::Duration;

use crate::server::RedisServer;
use crate::wait::wait_blocking;

const TOPOLOGY_DEADLINE: Duration = Duration::from_secs(20);
const SENTINELS: usize = 3;
const QUORUM: usize = 2;

/// One master, one replica and three sentinels on loopback.
pub struct SentinelSet {
    name: String,
    /// Data servers in start order (master first); their roles change on failover.
    servers: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
    /// Index into `servers` of the server `kill_master` took down.
    killed: Option<usize>,
}

impl SentinelSet {
    pub fn start(master_name: &str) -> SentinelSet {
        let master = RedisServer::start();
        let replica = RedisServer::builder().conf_line(format!("replicaof 127.0.0.1 {}", master.port())).start();
        // Sentinels learn about replicas from the master's INFO, which they fetch on
        // connect and then only every 10 s: link the replica first.
        wait_blocking(TOPOLOGY_DEADLINE, "the replica's link to the master to come up", || {
            let info: String = replica.query(redis::cmd("INFO").arg("replication")).ok()?;
            info.lines().any(|l| l.trim() == "master_link_status:up").then_some(())
        });

        let sentinels: Vec<RedisServer> = (0..SENTINELS)
            .map(|_| {
                RedisServer::builder()
                    .sentinel_mode()
                    .conf_line(format!("sentinel monitor {master_name} 127.0.0.1 {} {QUORUM}", master.port()))
                    .conf_line(format!("sentinel down-after-milliseconds {master_name} 1000"))
                    .conf_line(format!("sentinel failover-timeout {master_name} 3000"))
                    .conf_line(format!("sentinel parallel-syncs {master_name} 1"))
                    .start()
            })
            .collect();

        let set =
            SentinelSet { name: master_name.to_string(), servers: vec![master, replica], sentinels, killed: None };
        let (master_port, replica_port) = (set.servers[0].port(), set.servers[1].port());
        for sentinel in &set.sentinels {
            let what = format!("sentinel {} to know master, replica and peers", sentinel.port());
            wait_blocking(TOPOLOGY_DEADLINE, &what, || {
                let knows_master = set.master_addr(sentinel) == Some(master_port);
                let knows_replica = set.instances(sentinel, "replicas").iter().any(|r| {
                    let healthy = r.get("flags").is_some_and(|f| !f.contains("s_down") && !f.contains("disconnected"));
                    r.get("port").and_then(|p| p.parse::<u16>().ok()) == Some(replica_port) && healthy
                });
                let knows_peers = set.instances(sentinel, "sentinels").len() == SENTINELS - 1;
                (knows_master && knows_replica && knows_peers).then_some(())
            });
        }
        set
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/NAME`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinel_ports().iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), self.name)
    }

    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(RedisServer::port).collect()
    }

    /// The master's port as the sentinels currently report it.
    pub fn master_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|s| self.master_addr(s))
            .unwrap_or_else(|| panic!("no sentinel reports a master for {}", self.name))
    }

    /// The data servers (master and replica, in start order; roles change on
    /// failover, so look them up by port).
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// SIGKILLs whichever server is master now.
    pub fn kill_master(&mut self) {
        let port = self.master_port();
        let index = self
            .servers
            .iter()
            .position(|s| s.port() == port)
            .unwrap_or_else(|| panic!("sentinels report master port {port}, which is none of ours"));
        self.servers[index].kill();
        self.killed = Some(index);
    }

    /// Waits until every sentinel reports a master other than `old_master_port` and
    /// that server really has taken the master role; returns its port.
    pub fn wait_failover(&self, old_master_port: u16, deadline: Duration) -> u16 {
        let what = format!("sentinels to fail over {} away from port {old_master_port}", self.name);
        wait_blocking(deadline, &what, || {
            let mut reported = self.sentinels.iter().map(|s| self.master_addr(s));
            let first = reported.next().flatten()?;
            if first == old_master_port || !reported.all(|p| p == Some(first)) {
                return None;
            }
            let server = self.servers.iter().find(|s| s.port() == first)?;
            (role(server).as_deref() == Some("master")).then_some(first)
        })
    }

    /// Starts the server `kill_master` killed (same port and dir); the sentinels
    /// then turn it into a replica of the new master.
    pub fn restart_killed(&mut self) {
        let index = self.killed.take().expect("restart_killed called without a preceding kill_master");
        self.servers[index].restart();
    }

    fn master_addr(&self, sentinel: &RedisServer) -> Option<u16> {
        let addr: Option<(String, u16)> =
            sentinel.query(redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(&self.name)).ok()?;
        addr.map(|(_, port)| port)
    }

    /// `SENTINEL replicas|sentinels NAME` as one field map per instance.
    fn instances(&self, sentinel: &RedisServer, kind: &str) -> Vec<HashMap<String, String>> {
        sentinel.query(redis::cmd("SENTINEL").arg(kind).arg(&self.name)).unwrap_or_default()
    }
}

impl std::fmt::Debug for SentinelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelSet")
            .field("name", &self.name)
            .field("servers", &self.servers)
            .field("sentinels", &self.sentinel_ports())
            .finish_non_exhaustive()
    }
}

/// The first element of `ROLE` (`master`, `slave` or `sentinel`).
fn role(server: &RedisServer) -> Option<String> {
    let reply: Vec<redis::Value> = server.query(&redis::cmd("ROLE")).ok()?;
    redis::from_redis_value(reply.into_iter().next()?).ok()
}
