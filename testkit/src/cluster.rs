//! A Redis Cluster of masters only, for slot-routing and node-loss tests.
//!
//! No replicas: tests here are about clients following slots and surviving a node
//! restart, and replicas would add failovers that make timing nondeterministic.
//! Each node keeps nodes.conf and its AOF in its own dir, so a restarted node
//! rejoins with its slots and data.

use std::process::Command;
use std::time::Duration;

use crate::server::RedisServer;
use crate::wait::wait_blocking;

const CLUSTER_DEADLINE: Duration = Duration::from_secs(20);
const SLOTS: usize = 16_384;

pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes (at least 3, as `redis-cli --cluster create` demands),
    /// creates the cluster and waits until every node sees all slots served.
    pub fn start(masters: usize) -> RedisCluster {
        Self::start_with(masters, crate::Persistence::AofAlways)
    }

    /// [`RedisCluster::start`] with the given persistence on every node (benchmarks use `None`).
    pub fn start_with(masters: usize, persistence: crate::Persistence) -> RedisCluster {
        assert!(masters >= 3, "Redis Cluster needs at least 3 masters, asked for {masters}");
        let nodes: Vec<RedisServer> =
            (0..masters).map(|_| RedisServer::builder().persistence(persistence).cluster_node().start()).collect();
        let cluster = RedisCluster { nodes };

        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(cluster.ports().iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("running redis-cli --cluster create (is redis-cli installed?)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        cluster.wait_ok(CLUSTER_DEADLINE);
        cluster
    }

    /// Waits until the cluster is whole: every node reports `cluster_state:ok`, all
    /// slots served and all nodes known. Needed after restarting a node, which
    /// answers PING before gossip has brought it back; with a node down it times out.
    pub fn wait_ok(&self, deadline: Duration) {
        let count = self.nodes.len().to_string();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let what = format!("cluster node {} to report cluster_state:ok with all slots", node.port());
            wait_blocking(deadline, &what, || {
                let info: String = node.query(redis::cmd("CLUSTER").arg("INFO")).ok()?;
                let field = |name: &str| {
                    info.lines().find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':').map(str::to_string))
                };
                let ok = field("cluster_state").as_deref() == Some("ok")
                    && field("cluster_slots_ok") == Some(SLOTS.to_string())
                    && field("cluster_known_nodes").as_ref() == Some(&count);
                ok.then_some(())
            });
        }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.ports().iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// One node, to kill or restart it.
    pub fn node(&mut self, i: usize) -> &mut RedisServer {
        let count = self.nodes.len();
        self.nodes.get_mut(i).unwrap_or_else(|| panic!("cluster node {i} asked for, the cluster has {count}"))
    }

    /// Empties every running node (all are masters), e.g. between benchmark rounds.
    pub fn flushall(&self) {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            node.cli(&["FLUSHALL"]);
        }
    }
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster").field("nodes", &self.nodes).finish()
    }
}
