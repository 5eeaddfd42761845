//! Starts every kind of server the testkit offers and checks it behaves as promised.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use genesis_testkit::{eventually, wait_blocking, Persistence, RedisCluster, RedisServer, SentinelSet, Tls};

fn redis_get(url: &str, key: &str) -> redis::RedisResult<Option<String>> {
    let mut con = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(2))?;
    redis::cmd("GET").arg(key).query(&mut con)
}

#[test]
fn plain_server_keeps_aof_across_restart_and_loses_it_on_restart_empty() {
    let mut server = RedisServer::start();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}/", server.port()));
    assert_eq!(server.url_with_auth(), server.url());
    assert_eq!(server.cli(&["SET", "k", "v"]), "OK");

    server.kill();
    assert!(!server.is_running());
    server.restart();
    assert!(server.is_running());
    assert_eq!(redis_get(&server.url(), "k").expect("GET after restart").as_deref(), Some("v"));

    server.restart_empty();
    assert_eq!(server.cli(&["EXISTS", "k"]), "0");
}

#[test]
fn no_persistence_server_answers() {
    let server = RedisServer::builder().persistence(Persistence::None).start();
    assert_eq!(server.cli(&["CONFIG", "GET", "appendonly"]), "appendonly\nno");
}

#[test]
fn tls_on_accepts_clients_without_certificates() {
    let server = RedisServer::builder().tls(Tls::On).start();
    assert!(server.url().starts_with("rediss://127.0.0.1:"));
    assert_eq!(server.cli(&["PING"]), "PONG");
    assert!(server.tls_files().is_some());
}

#[test]
fn tls_mutual_refuses_clients_without_certificates() {
    let server = RedisServer::builder().tls(Tls::Mutual).start();
    assert_eq!(server.cli(&["PING"]), "PONG");

    let files = server.tls_files().expect("a TLS server has TLS files");
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string(), "-e", "--tls", "--cacert"])
        .arg(&files.ca_cert)
        .arg("PING")
        .output()
        .expect("running redis-cli");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success() && !stdout.contains("PONG"),
        "a client without a certificate got through: {stdout}"
    );
}

#[test]
fn acl_user_refuses_wrong_password_and_anonymous_clients() {
    let server = RedisServer::builder().acl_user("alice", "s3cret pass").start();
    assert_eq!(server.cli(&["ACL", "WHOAMI"]), "alice");
    assert!(server.url_with_auth().starts_with("redis://alice:s3cret%20pass@127.0.0.1:"));
    redis_get(&server.url_with_auth(), "nothing").expect("the ACL user authenticates through the URL");

    let port = server.port().to_string();
    let wrong = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port, "-e", "--no-auth-warning", "--user", "alice", "-a", "wrong", "PING"])
        .output()
        .expect("running redis-cli");
    assert!(!wrong.status.success(), "a wrong password was accepted");
    assert!(redis_get(&server.url(), "nothing").is_err(), "an anonymous client was accepted");
}

#[test]
fn requirepass_server_authenticates_default_user() {
    let server = RedisServer::builder().password("pw").start();
    assert_eq!(server.url_with_auth(), format!("redis://:pw@127.0.0.1:{}/", server.port()));
    assert_eq!(server.cli(&["ACL", "WHOAMI"]), "default");
    assert!(redis_get(&server.url(), "k").is_err(), "no password was accepted");
    assert_eq!(redis_get(&server.url_with_auth(), "k").expect("GET with password"), None);
}

#[test]
fn sentinel_fails_over_to_the_replica() {
    let mut set = SentinelSet::start("smoke");
    let ports = set.sentinel_ports();
    assert_eq!(ports.len(), 3);
    assert_eq!(
        set.url(),
        format!("redis+sentinel://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/smoke", ports[0], ports[1], ports[2])
    );

    let old = set.master_port();
    set.kill_master();
    let new = set.wait_failover(old, Duration::from_secs(30));
    assert_ne!(new, old);

    let url = format!("redis://127.0.0.1:{new}/");
    let mut con = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .expect("connecting to the new master");
    redis::cmd("SET").arg("after-failover").arg("yes").query::<()>(&mut con).expect("SET on the new master");
    assert_eq!(redis_get(&url, "after-failover").expect("GET on the new master").as_deref(), Some("yes"));

    set.restart_killed();
    let old_server = set.servers().iter().find(|s| s.port() == old).expect("the old master is one of ours");
    // Sentinel reconfigures a returning old master on its own schedule (it must first see it answer
    // again); on a loaded machine running every suite at once that took over 30 s once.
    wait_blocking(Duration::from_secs(90), "the old master to rejoin as a replica", || {
        let info = old_server.cli(&["INFO", "replication"]);
        (info.contains("role:slave") && info.contains(&format!("master_port:{new}"))).then_some(())
    });
}

#[test]
fn cluster_routes_keys_to_different_nodes_and_survives_a_node_restart() {
    let mut cluster = RedisCluster::start(3);
    let ports = cluster.ports();
    assert_eq!(
        cluster.url(),
        format!("redis+cluster://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1], ports[2])
    );

    let keys: Vec<String> = (0..30).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        let output = cluster.node(0).cli_command().arg("-c").args(["SET", key, "v"]).output().expect("redis-cli -c");
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "OK", "SET {key} through the cluster");
    }
    let sizes: Vec<u64> =
        (0..3).map(|i| cluster.node(i).cli(&["DBSIZE"]).parse().expect("DBSIZE is a number")).collect();
    assert_eq!(sizes.iter().sum::<u64>(), keys.len() as u64);
    assert!(sizes.iter().filter(|&&n| n > 0).count() >= 2, "keys all landed on one node: {sizes:?}");

    cluster.node(1).restart();
    cluster.wait_ok(Duration::from_secs(20));
    assert_eq!(cluster.node(1).cli(&["DBSIZE"]), sizes[1].to_string(), "the restarted node kept its keys");

    cluster.flushall();
    let total: u64 = (0..3).map(|i| cluster.node(i).cli(&["DBSIZE"]).parse::<u64>().expect("DBSIZE")).sum();
    assert_eq!(total, 0);
}

#[tokio::test]
async fn eventually_returns_the_first_some() {
    let mut calls = 0;
    let value = eventually(Duration::from_secs(1), "the third call", || {
        calls += 1;
        let ready = calls >= 3;
        async move { ready.then_some(calls) }
    })
    .await;
    assert_eq!(value, 3);
}

#[test]
#[should_panic(expected = "waiting for the impossible")]
fn wait_blocking_panics_naming_the_condition() {
    wait_blocking(Duration::from_millis(50), "the impossible", || None::<()>);
}
