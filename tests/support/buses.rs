//! The buses every contract test runs on: the in-process bus, a real standalone Redis and a real
//! 3-master Redis Cluster, each started by the harness; [`every_bus!`] turns one scenario into a test
//! per bus.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{fast_settings, roster, RedisServer};
use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::redis::{RedisBus, Replication};
use genesis_actors::bus::Bus;
use genesis_actors::connection::{Connector, RedisOptions, RedisTarget, Topology};
use genesis_actors::executor::ExecutorRegistry;
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::memory::MemoryLedger;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::Ledger;
use genesis_actors::roster::AgentSpec;
use genesis_actors::runtime::Runtime;
use genesis_actors::settings::RuntimeSettings;
use genesis_testkit::RedisCluster;

pub struct Harness {
    pub bus: Bus,
    redis: Option<RedisServer>,
    cluster: Option<RedisCluster>,
}

impl Harness {
    pub fn memory() -> Harness {
        Harness { bus: Bus::Memory(MemoryBus::new()), redis: None, cluster: None }
    }

    pub async fn redis() -> Harness {
        let server = RedisServer::start();
        let bus = RedisBus::connect(&server.url(), fast_settings("x").bus.reconnect).await.expect("connect");
        Harness { bus: Bus::Redis(bus), redis: Some(server), cluster: None }
    }

    /// A real 3-master Redis Cluster (no replicas), reached through a `redis+cluster://` connector.
    pub async fn cluster() -> Harness {
        let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3)).await.expect("cluster start-up");
        let bus =
            RedisBus::open(cluster_connector(&cluster), Replication::default()).await.expect("connect to the cluster");
        Harness { bus: Bus::Redis(bus), redis: None, cluster: Some(cluster) }
    }

    /// The payment ledger that goes with this bus, as a node has it: in memory beside the in-process
    /// bus, on the same Redis (standalone or Cluster) beside a Redis bus.
    pub async fn ledger(&self) -> Ledger {
        match (&self.redis, &self.cluster) {
            (Some(server), _) => Ledger::Redis(RedisLedger::connect(&server.url()).await.expect("ledger")),
            (None, Some(cluster)) => {
                Ledger::Redis(RedisLedger::open(&cluster_connector(cluster)).await.expect("ledger on the cluster"))
            }
            (None, None) => Ledger::Memory(MemoryLedger::new()),
        }
    }

    /// A node with a MetaAgent deciding with `payments` (whose ledger is [`Harness::ledger`]'s).
    pub async fn run_with_payments(
        &self,
        settings: RuntimeSettings,
        agents: Vec<AgentSpec>,
        ex: ExecutorRegistry,
        payments: Authority,
    ) -> Runtime {
        Runtime::start_with_payments(self.bus.clone(), settings, roster(agents), ex, Some(payments))
            .await
            .expect("runtime starts")
    }

    pub async fn run(&self, settings: RuntimeSettings, agents: Vec<AgentSpec>) -> Runtime {
        self.run_with(settings, agents, ExecutorRegistry::builtin()).await
    }

    pub async fn run_with(&self, settings: RuntimeSettings, agents: Vec<AgentSpec>, ex: ExecutorRegistry) -> Runtime {
        Runtime::start(self.bus.clone(), settings, roster(agents), ex).await.expect("runtime starts")
    }
}

/// A `redis+cluster://` connector to `cluster`.
fn cluster_connector(cluster: &RedisCluster) -> Connector {
    let opts = RedisOptions { url: Some(cluster.url().into()), ..Default::default() };
    let target = RedisTarget::resolve(&opts, "bus.redis_url").expect("a valid cluster URL");
    assert_eq!(target.topology(), Topology::Cluster);
    Connector::new(target, fast_settings("x").bus.reconnect).expect("cluster connector")
}

/// One test per bus for each named scenario `async fn name(h: Harness)`: `name::memory`,
/// `name::redis` and `name::cluster`.
#[macro_export]
macro_rules! every_bus {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name($crate::support::buses::Harness::memory()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name($crate::support::buses::Harness::redis().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$name($crate::support::buses::Harness::cluster().await).await
            }
        }
    )*};
}
