//! One agent child process: started in a process group of its own, tied to the node's life, spoken to
//! in bounded lines, and stopped as a group.
//!
//! Three rules keep a child from outliving its purpose:
//! - it leads its own process group (`process_group(0)`), so SIGTERM/SIGKILL reach whatever it
//!   started too (a `sleep`, a browser, a model server);
//! - on Linux it is started with `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the node even when the
//!   node is SIGKILLed. The signal fires when the *thread* that forked it ends, so every child is
//!   forked on one dedicated thread that lives as long as the process (see [`spawner`]);
//! - its leader is never reaped before the group got its SIGKILL: while the leader is unreaped (a
//!   zombie at worst) its pid, which is the group id, cannot be reused, so signalling the group never
//!   hits an unrelated process.

use super::protocol::MAX_LINE_BYTES;
use crate::roster::ProcessSpec;
use futures::FutureExt;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

/// The longest stderr line logged; the rest of the line is dropped (and the log line says so).
pub const MAX_STDERR_LINE: usize = 8 * 1024;
/// How much of the last stderr line a crash message quotes.
const LAST_STDERR_CHARS: usize = 300;
/// How long a reaped-after-SIGKILL leader and its stderr get before they are left to the runtime.
const REAP_WAIT: Duration = Duration::from_secs(1);
const STDERR_DRAIN: Duration = Duration::from_millis(500);

/// The variables a child inherits from the node. Nothing else: the node's environment holds secrets
/// (the Redis URL with its password, webhook URLs) that an outside agent has no business reading.
/// The agent's own settings go in `env` in agents.toml.
pub const INHERITED_ENV: [&str; 10] =
    ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// What the stderr logger shares with the conversation: which task is running (for the log lines)
/// and the last line (for a crash message).
#[derive(Default)]
struct Shared {
    task: Mutex<Option<String>>,
    last_stderr: Mutex<Option<String>>,
}

/// The outcome of reading one bounded line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A whole line is in the buffer (without its newline; a last line without one counts).
    Line,
    /// The line is longer than the bound: the buffer holds its first `max` bytes, the rest is unread.
    Overflow,
    /// End of the stream, nothing buffered.
    Eof,
}

/// Read one line of at most `max` bytes into `buf`. Never buffers more than `max` bytes of a line,
/// whatever the other side writes.
pub async fn read_bounded<R: AsyncBufRead + Unpin>(r: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<Read> {
    buf.clear();
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() { Read::Eof } else { Read::Line });
        }
        let (take, newline) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        let room = max - buf.len();
        if take > room {
            buf.extend_from_slice(&chunk[..room]);
            r.consume(room);
            return Ok(Read::Overflow);
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(take + usize::from(newline));
        if newline {
            return Ok(Read::Line);
        }
    }
}

/// Consume the rest of the current line (after an [`Read::Overflow`]).
async fn skip_line<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<()> {
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                r.consume(n);
            }
        }
    }
}

/// What an idle child's stdout says before the next request is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Nothing to read: ready for a request.
    Ready,
    /// Its stdout is closed: it exited (or closed stdout) since its last task.
    Exited,
    /// It wrote something after its last answer: out of step with the protocol.
    Stray,
}

/// How a child ended, for the log and for a crash message.
#[derive(Debug)]
pub struct Stopped {
    pub status: Option<ExitStatus>,
    pub last_stderr: Option<String>,
}

impl Stopped {
    /// `exit status: 3; last stderr line: "…"` (whatever is known).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.status {
            parts.push(s.to_string());
        }
        if let Some(l) = &self.last_stderr {
            parts.push(format!("last stderr line: {l:?}"));
        }
        parts.join("; ")
    }
}

/// A running agent process and the ends of its pipes.
pub struct AgentChild {
    child: tokio::process::Child,
    /// The leader's pid, which is also its process group id.
    pid: u32,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    line: Vec<u8>,
    stderr: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Set once the whole group got SIGKILL; from then on the leader may be reaped and the group id
    /// must not be signalled again.
    group_killed: bool,
}

impl AgentChild {
    /// Start `spec.command` for `agent`'s slot `slot`. The error is a sentence for an operator
    /// (`Unavailable`): the command is missing, not executable, or its `cwd` does not exist.
    pub async fn spawn(agent: &str, slot: usize, spec: &ProcessSpec) -> Result<AgentChild, String> {
        let Some(program) = spec.command.first() else {
            return Err("`command` is empty".into());
        };
        if let Some(dir) = &spec.cwd {
            if !dir.is_dir() {
                return Err(format!(
                    "cannot start `{program}`: its working directory {} does not exist",
                    dir.display()
                ));
            }
        }
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&spec.command[1..])
            .env_clear()
            .envs(INHERITED_ENV.iter().filter_map(|k| std::env::var_os(k).map(|v| (k, v))))
            .envs(&spec.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        die_with_node(&mut cmd);
        let spawned = spawner::spawn(cmd).await.map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                format!("cannot start `{program}`: not found (check `command` in agents.toml, and PATH)")
            }
            io::ErrorKind::PermissionDenied => {
                format!("cannot start `{program}`: permission denied (is it executable?)")
            }
            _ => format!("cannot start `{program}`: {e}"),
        })?;
        let mut child = spawned;
        let (Some(pid), Some(stdin), Some(stdout), Some(stderr)) =
            (child.id(), child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(format!("cannot start `{program}`: it exited at once, before its pipes could be used"));
        };
        let shared = Arc::new(Shared::default());
        let logger = tokio::spawn(log_stderr(stderr, agent.to_string(), slot, pid, shared.clone()));
        tracing::info!(agent, slot, pid, program = %program, "agent process started");
        Ok(AgentChild {
            child,
            pid,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            line: Vec::new(),
            stderr: Some(logger),
            shared,
            group_killed: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Name the task the child now works on, for its stderr log lines.
    pub fn set_task(&self, task: String) {
        if let Ok(mut t) = self.shared.task.lock() {
            *t = Some(task);
        }
    }

    /// Has the leader exited? Asked with `WNOWAIT`, so it stays unreaped (see the module doc) and
    /// its group id stays safe to signal. Unlike a look at stdout, this does not depend on the
    /// runtime having noticed the pipe's hang-up yet.
    fn leader_exited(&self) -> bool {
        let Some(pid) = group_id(self.pid) else { return true };
        // SAFETY: a zeroed siginfo_t is a valid out-parameter; waitid writes only into it.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r =
                libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT);
            // r == -1: not our child any more (reaped elsewhere): as good as exited.
            r != 0 || info.si_pid() != 0
        }
    }

    /// Write one line (it must end in a newline) and flush it.
    pub async fn send(&mut self, line: &[u8]) -> io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        stdin.write_all(line).await?;
        stdin.flush().await
    }

    /// Read the next stdout line (at most [`MAX_LINE_BYTES`]); see [`AgentChild::line`].
    pub async fn next_line(&mut self) -> io::Result<Read> {
        read_bounded(&mut self.stdout, &mut self.line, MAX_LINE_BYTES).await
    }

    /// The line the last [`AgentChild::next_line`] read.
    pub fn line(&self) -> &[u8] {
        &self.line
    }

    /// Look at stdout without waiting: anything there between two tasks is a fault.
    pub fn idle_state(&mut self) -> Idle {
        if self.leader_exited() {
            return Idle::Exited;
        }
        match self.stdout.fill_buf().now_or_never() {
            None => Idle::Ready,
            Some(Ok([])) | Some(Err(_)) => Idle::Exited,
            Some(Ok(_)) => Idle::Stray,
        }
    }

    /// Stop the child and everything in its process group: close its stdin (a well-behaved agent
    /// exits at EOF), SIGTERM the group, wait up to `grace` for its stdout to close, SIGKILL the group,
    /// reap the leader. Bounded by `grace` + about 1.5 s.
    pub async fn stop(mut self, grace: Duration, why: &str) -> Stopped {
        self.stdin = None;
        signal_group(self.pid, libc::SIGTERM);
        let closed = tokio::time::timeout(grace, drain(&mut self.stdout)).await.is_ok();
        signal_group(self.pid, libc::SIGKILL);
        self.group_killed = true;
        let status = tokio::time::timeout(REAP_WAIT, self.child.wait()).await.ok().and_then(Result::ok);
        if let Some(mut logger) = self.stderr.take() {
            // Lets the last stderr lines reach the log (and the crash message); a grandchild that
            // left the group and kept stderr open must not hold us.
            if tokio::time::timeout(STDERR_DRAIN, &mut logger).await.is_err() {
                logger.abort();
            }
        }
        let last_stderr = self.shared.last_stderr.lock().ok().and_then(|l| l.clone());
        let status_text = status.map(|s| s.to_string()).unwrap_or_else(|| "not reaped yet".into());
        tracing::info!(pid = self.pid, status = %status_text, stopped_by_sigterm = closed, why, "agent process stopped");
        Stopped { status, last_stderr }
    }
}

impl Drop for AgentChild {
    /// A child dropped without [`AgentChild::stop`] (its task's future was dropped mid-conversation):
    /// SIGKILL the group now; tokio's `kill_on_drop` reaps the leader in the background.
    fn drop(&mut self) {
        if !self.group_killed {
            signal_group(self.pid, libc::SIGKILL);
        }
    }
}

/// Read and discard until EOF (every writer of the pipe has exited or closed it).
async fn drain(r: &mut BufReader<ChildStdout>) {
    loop {
        match r.fill_buf().await {
            Ok([]) | Err(_) => return,
            Ok(chunk) => {
                let n = chunk.len();
                r.consume(n);
            }
        }
    }
}

/// The group id to signal for a child's pid, or `None` for 0 and 1 (0 would be the node's own group,
/// 1 init's): a child's group id is its own pid, above both.
fn group_id(pgid: u32) -> Option<libc::pid_t> {
    libc::pid_t::try_from(pgid).ok().filter(|g| *g > 1)
}

/// Send `signal` to the process group `pgid`.
fn signal_group(pgid: u32, signal: libc::c_int) {
    let Some(pgid) = group_id(pgid) else { return };
    // SAFETY: killpg has no memory-safety preconditions; an error (ESRCH: the group is gone) is fine.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// Ask the kernel to SIGKILL the child when its parent thread ends (Linux only).
#[cfg(target_os = "linux")]
fn die_with_node(cmd: &mut tokio::process::Command) {
    // SAFETY: getpid is async-signal-safe and runs before the fork.
    let node = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The node died between fork and prctl: the signal will never come, so do not start.
            if libc::getppid() != node {
                // (No allocation here: a raw OS error.)
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_node(_: &mut tokio::process::Command) {}

/// Log each stderr line (bounded) with agent, slot, pid and task; keep the last one.
async fn log_stderr(stderr: tokio::process::ChildStderr, agent: String, slot: usize, pid: u32, shared: Arc<Shared>) {
    let mut r = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        let truncated = match read_bounded(&mut r, &mut buf, MAX_STDERR_LINE).await {
            Ok(Read::Line) => false,
            Ok(Read::Overflow) => true,
            Ok(Read::Eof) | Err(_) => return,
        };
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches('\r');
        let task = shared.task.lock().ok().and_then(|t| t.clone()).unwrap_or_default();
        if truncated {
            tracing::info!(agent = %agent, slot, pid, task_id = %task, "agent stderr: {text} […line cut at {MAX_STDERR_LINE} bytes]");
        } else {
            tracing::info!(agent = %agent, slot, pid, task_id = %task, "agent stderr: {text}");
        }
        if let Ok(mut last) = shared.last_stderr.lock() {
            *last = Some(text.chars().take(LAST_STDERR_CHARS).collect());
        }
        if truncated && skip_line(&mut r).await.is_err() {
            return;
        }
    }
}

/// The one thread every agent child is forked from. `PR_SET_PDEATHSIG` fires when the forking thread
/// ends, and tokio's worker threads may end (a runtime shut down, a worker turned blocking thread
/// retired), which would kill healthy agents; this thread lives as long as the process.
mod spawner {
    use std::io;
    use std::sync::mpsc;
    use std::sync::OnceLock;

    type Job = Box<dyn FnOnce() + Send>;

    fn thread() -> io::Result<&'static mpsc::Sender<Job>> {
        static SENDER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
        if let Some(s) = SENDER.get() {
            return Ok(s);
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new().name("genesis-agent-spawner".into()).spawn(move || {
            for job in rx {
                job();
            }
        });
        started?;
        // Two first callers may race: the loser's thread ends when its sender drops here.
        Ok(SENDER.get_or_init(|| tx))
    }

    /// Spawn `cmd` on the spawner thread, inside the caller's tokio runtime (its reaper and pipes
    /// belong to that runtime).
    pub async fn spawn(mut cmd: tokio::process::Command) -> io::Result<tokio::process::Child> {
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _runtime = handle.enter();
            let _ = tx.send(cmd.spawn());
        });
        thread()?.send(job).map_err(|_| io::Error::other("the agent spawner thread is gone"))?;
        rx.await.map_err(|_| io::Error::other("the agent spawner thread dropped the request"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(Read, String)> {
        let mut r = input;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let got = read_bounded(&mut r, &mut buf, max).await.expect("in-memory read");
            out.push((got, String::from_utf8_lossy(&buf).into_owned()));
            match got {
                Read::Eof => return out,
                Read::Overflow => skip_line(&mut r).await.expect("skip"),
                Read::Line => {}
            }
        }
    }

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let got = lines(b"one\ntwo\n\nthree", 5).await;
        let want = [(Read::Line, "one"), (Read::Line, "two"), (Read::Line, ""), (Read::Line, "three"), (Read::Eof, "")];
        assert_eq!(got, want.map(|(r, s)| (r, s.to_string())));
        let got = lines(b"abcdefgh\nok\n", 5).await;
        let want = [(Read::Overflow, "abcde"), (Read::Line, "ok"), (Read::Eof, "")];
        assert_eq!(got, want.map(|(r, s)| (r, s.to_string())));
        // Exactly the bound is a line; one more is an overflow.
        assert_eq!(lines(b"abcde\n", 5).await[0], (Read::Line, "abcde".to_string()));
        assert_eq!(lines(b"abcdef\n", 5).await[0].0, Read::Overflow);
    }

    #[test]
    fn the_own_group_and_init_are_never_signalled() {
        assert_eq!(group_id(0), None);
        assert_eq!(group_id(1), None);
        assert_eq!(group_id(u32::MAX), None, "would wrap to a negative pid: every process");
        assert_eq!(group_id(4242), Some(4242));
    }

    #[test]
    fn stopped_describes_what_is_known() {
        let s = Stopped { status: None, last_stderr: Some("KeyError: 'x'".into()) };
        assert_eq!(s.describe(), "last stderr line: \"KeyError: 'x'\"");
        assert_eq!(Stopped { status: None, last_stderr: None }.describe(), "");
    }
}
