//! Command output that ends quietly when the reader goes away.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe (`genesis health | head -1`) fails with
//! `BrokenPipe`, and `println!` turns that failure into a panic: exit 101 and a panic message on
//! stderr. Commands print with [`outln!`] instead (the crate root denies `println!`): after a broken
//! pipe the rest of the output is dropped and the command ends with its own status, which is what a
//! reader like `head` expects of the writer. Any other write error (a full disk behind `> file`) also
//! stops the output, but is kept: `main` turns a success into a failure then, because the output is
//! incomplete. SIGPIPE stays ignored (rather than reset to its default) because `genesis serve` and
//! the Redis client write to sockets, where a peer that hangs up must be an error, not a kill.
//!
//! [`errln!`] is the same for stderr, where nothing better can be done with a failed write than to
//! drop it. Both are in scope in every module (`#[macro_use] mod output` comes first in `main.rs`).

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// Print a line on stdout; see the module documentation.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// Print a line on stderr, ignoring write errors.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::err_line(format_args!($($arg)*))
    };
}

/// What has gone wrong with stdout so far.
#[derive(Debug, Default)]
struct Sink {
    /// The reader is gone (or another error happened): drop further output.
    stopped: bool,
    /// A write error other than a closed pipe.
    error: Option<io::Error>,
}

impl Sink {
    fn write(&mut self, out: &mut impl Write, args: fmt::Arguments<'_>) {
        if self.stopped {
            return;
        }
        if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
            self.stop(e);
        }
    }

    fn flush(&mut self, out: &mut impl Write) {
        if !self.stopped {
            if let Err(e) = out.flush() {
                self.stop(e);
            }
        }
    }

    fn stop(&mut self, e: io::Error) {
        self.stopped = true;
        if e.kind() != io::ErrorKind::BrokenPipe {
            self.error = Some(e);
        }
    }
}

static STDOUT: Mutex<Sink> = Mutex::new(Sink { stopped: false, error: None });

/// Write one line to stdout (use [`outln!`]).
pub fn line(args: fmt::Arguments<'_>) {
    // A poisoned lock means a panic elsewhere mid-write; the sink's state is still meaningful.
    let mut sink = STDOUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    sink.write(&mut io::stdout().lock(), args);
}

/// Write one line to stderr (use [`errln!`]).
pub fn err_line(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Flush stdout and return the first write error that was not a closed pipe, if any.
pub fn finish() -> Option<io::Error> {
    let mut sink = STDOUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    sink.flush(&mut io::stdout().lock());
    sink.error.take()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, then fails every write with `kind`.
    struct Limited {
        room: usize,
        kind: io::ErrorKind,
        written: Vec<u8>,
        attempts: usize,
    }

    impl Write for Limited {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.attempts += 1;
            if self.room == 0 {
                return Err(self.kind.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn limited(room: usize, kind: io::ErrorKind) -> Limited {
        Limited { room, kind, written: Vec::new(), attempts: 0 }
    }

    #[test]
    fn a_closed_pipe_stops_the_output_without_an_error() {
        let (mut sink, mut out) = (Sink::default(), limited(6, io::ErrorKind::BrokenPipe));
        sink.write(&mut out, format_args!("line {}", 0));
        assert!(sink.stopped && sink.error.is_none(), "a closed pipe is no error");
        let attempts = out.attempts;
        for i in 1..5 {
            sink.write(&mut out, format_args!("line {i}"));
        }
        sink.flush(&mut out);
        assert_eq!(out.attempts, attempts, "nothing is written after the pipe closed");
        assert_eq!(out.written, b"line 0");
    }

    #[test]
    fn other_write_errors_are_kept() {
        let (mut sink, mut out) = (Sink::default(), limited(0, io::ErrorKind::StorageFull));
        sink.write(&mut out, format_args!("x"));
        sink.write(&mut out, format_args!("y"));
        assert_eq!(out.attempts, 1);
        assert_eq!(sink.error.map(|e| e.kind()), Some(io::ErrorKind::StorageFull));
    }

    #[test]
    fn lines_end_in_a_newline() {
        let (mut sink, mut out) = (Sink::default(), limited(usize::MAX, io::ErrorKind::Other));
        sink.write(&mut out, format_args!("a {}", 1));
        sink.write(&mut out, format_args!("b"));
        assert_eq!(out.written, b"a 1\nb\n");
    }
}
