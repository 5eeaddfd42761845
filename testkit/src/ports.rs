//! Port candidates for test servers.
//!
//! Asking the kernel for port 0 and releasing it is racy: between our release and
//! redis-server's bind, a parallel test may take the same port. We can't close that
//! window, so the servers retry on "Address already in use" (see `server.rs`); this
//! module only makes collisions rare: it never returns a port twice in one process,
//! and never one of the shared Redis's ports.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// Redis Cluster listens for its bus on `port + 10000`.
pub(crate) const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// The shared Redis on this machine and its would-be cluster bus: never ours.
const RESERVED: [u16; 2] = [6379, 6379 + CLUSTER_BUS_OFFSET];

/// Ports handed out by this process, so two tests in one binary never get the same
/// candidate even when the kernel recycles a just-released port.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port that was free a moment ago, for callers that run their own
/// servers. They should be ready to retry if it was taken in the meantime.
pub fn free_port() -> u16 {
    candidate(false)
}

/// A fresh candidate; with `cluster_bus`, `port + 10000` is free too (so the port is
/// below 55535).
pub(crate) fn candidate(cluster_bus: bool) -> u16 {
    for _ in 0..10_000 {
        let port = kernel_port();
        if RESERVED.contains(&port) {
            continue;
        }
        let bus = if cluster_bus {
            match port.checked_add(CLUSTER_BUS_OFFSET) {
                Some(bus) if !RESERVED.contains(&bus) && bindable(bus) => Some(bus),
                _ => continue,
            }
        } else {
            None
        };
        let mut handed_out = HANDED_OUT.lock().expect("port registry mutex poisoned");
        // A port is taken if it, or its bus, collides with anything handed out before
        // (including other servers' bus ports).
        let wanted: Vec<u16> = std::iter::once(port).chain(bus).collect();
        if wanted.iter().any(|p| handed_out.contains(p)) {
            continue;
        }
        handed_out.extend(wanted);
        return port;
    }
    panic!("could not find a free loopback port{}", if cluster_bus { " pair (port, port+10000)" } else { "" });
}

fn kernel_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0 to pick a free port");
    listener.local_addr().expect("reading the local address of a bound listener").port()
}

fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}
