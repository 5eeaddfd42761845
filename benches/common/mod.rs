//! What the benchmarks share: a private `redis-server` (from the test kit) on a free loopback port in
//! a temporary directory, with persistence off (the benches measure the runtime and Redis's command work, not
//! fsync). Never the shared Redis on 6379.

/// The bench's private Redis: the test kit's server (free port, own directory) with persistence off.
pub fn redis() -> genesis_testkit::RedisServer {
    genesis_testkit::RedisServer::builder().persistence(genesis_testkit::Persistence::None).start()
}

/// `12345.6` → `"12,346"`.
pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub struct Row {
    pub name: String,
    pub value: String,
    pub target: String,
    pub met: Option<bool>,
}

pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>, target: &str, met: Option<bool>) {
        let row = Row { name: name.into(), value: value.into(), target: target.into(), met };
        eprintln!("  {} = {}", row.name, row.value);
        self.rows.push(row);
    }

    pub fn print(&self) {
        let w0 = self.rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(0).max(8);
        let w1 = self.rows.iter().map(|r| r.value.chars().count()).max().unwrap_or(0).max(6);
        let w2 = self.rows.iter().map(|r| r.target.chars().count()).max().unwrap_or(0).max(6);
        println!();
        println!("{:<w0$}  {:>w1$}  {:<w2$}  met", "scenario", "result", "target");
        println!("{}", "-".repeat(w0 + w1 + w2 + 9));
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            println!("{:<w0$}  {:>w1$}  {:<w2$}  {met}", r.name, r.value, r.target);
        }
    }
}
