//! Logging: tracing to stderr, as text or JSON, filtered by `RUST_LOG` (default `info`).
//!
//! Log lines are collected in memory and written to stderr in batches, by a thread of their own
//! every `flush_every` (and at once when a batch reaches [`BATCH_BYTES`]), rather than with a
//! system call per line: under load the inbound path logs a line per call, and writing each
//! one cost as much as a tenth of the call. A zero interval writes every line at once. What is
//! collected is written when the [`LogGuard`] is dropped (the end of `main`) and before a panic
//! message; a process killed with SIGKILL loses at most the lines of the last interval.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// A batch of log lines this large is written at once, without waiting for the interval.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Where collected log lines go: stderr, or a test's buffer.
type Sink = Box<dyn Write + Send>;

/// The log lines not yet written, shared by the threads that log and the one that writes.
struct Pending {
    lines: Mutex<(Vec<u8>, Sink)>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl Pending {
    fn new(sink: Sink) -> Self {
        Self {
            lines: Mutex::new((Vec::with_capacity(BATCH_BYTES), sink)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Vec<u8>, Sink)> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes what is collected (holding the lock, so lines keep their order).
    fn flush(&self) {
        let mut guard = self.lock();
        let (lines, sink) = &mut *guard;
        write_out(lines, sink);
    }
}

fn write_out(lines: &mut Vec<u8>, sink: &mut Sink) {
    if lines.is_empty() {
        return;
    }
    // Nowhere to report a failure to write the log: the lines are dropped.
    let _ = sink.write_all(lines);
    let _ = sink.flush();
    lines.clear();
}

/// The writer tracing formats each event into: one `write` per event, appended to the batch.
#[derive(Debug, Clone)]
struct Batched {
    pending: Arc<Pending>,
}

/// One event's writer.
#[derive(Debug)]
struct BatchedLine<'a> {
    pending: &'a Pending,
}

impl Write for BatchedLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut guard = self.pending.lock();
        let (lines, sink) = &mut *guard;
        lines.extend_from_slice(buf);
        if lines.len() >= BATCH_BYTES {
            write_out(lines, sink);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = BatchedLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        BatchedLine {
            pending: &self.pending,
        }
    }
}

/// Writes the log lines still collected when dropped; keep it until the program ends.
#[derive(Debug)]
#[must_use = "dropping the guard at once writes nothing later"]
pub struct LogGuard {
    pending: Option<Arc<Pending>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(pending) = &self.pending {
            pending.flush();
        }
    }
}

/// Installs the global tracing subscriber. Call once, first thing in `main`, and keep the guard.
/// `flush_every` is how often collected lines are written (see the module documentation);
/// zero writes each line at once.
///
/// # Errors
/// When a global subscriber is already installed.
pub fn init_tracing(
    format: LogFormat,
    flush_every: Duration,
) -> Result<LogGuard, Box<dyn std::error::Error + Send + Sync>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a log file or collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    if flush_every.is_zero() {
        let builder = builder.with_writer(std::io::stderr);
        match format {
            LogFormat::Text => builder.try_init()?,
            LogFormat::Json => builder.json().flatten_event(true).try_init()?,
        }
        return Ok(LogGuard { pending: None });
    }
    let pending = Arc::new(Pending::new(Box::new(std::io::stderr())));
    let builder = builder.with_writer(Batched {
        pending: Arc::clone(&pending),
    });
    match format {
        LogFormat::Text => builder.try_init()?,
        LogFormat::Json => builder.json().flatten_event(true).try_init()?,
    }
    let writer = Arc::downgrade(&pending);
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            loop {
                std::thread::sleep(flush_every);
                match writer.upgrade() {
                    Some(pending) => pending.flush(),
                    None => return,
                }
            }
        })?;
    // A panic's message goes straight to stderr: the lines logged before it go first.
    let on_panic = Arc::downgrade(&pending);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(pending) = on_panic.upgrade() {
            pending.flush();
        }
        previous(info);
    }));
    Ok(LogGuard {
        pending: Some(pending),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink tests can read.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn written(sink: &Shared) -> Vec<u8> {
        sink.0.lock().expect("lock").clone()
    }

    #[test]
    fn lines_are_written_in_order_when_flushed_or_when_a_batch_is_full() {
        let sink = Shared::default();
        let writer = Batched {
            pending: Arc::new(Pending::new(Box::new(sink.clone()))),
        };
        writer.make_writer().write_all(b"one\n").expect("write");
        writer.make_writer().write_all(b"two\n").expect("write");
        assert!(written(&sink).is_empty(), "nothing written before a flush");
        writer.pending.flush();
        assert_eq!(written(&sink), b"one\ntwo\n");
        writer.pending.flush();
        assert_eq!(
            written(&sink),
            b"one\ntwo\n",
            "a flush writes each line once"
        );

        // A full batch is written by the line that fills it, without waiting for a flush.
        let line = vec![b'x'; 1_000];
        let mut sent = 0;
        while sent < BATCH_BYTES {
            writer.make_writer().write_all(&line).expect("write");
            sent += line.len();
        }
        assert_eq!(written(&sink).len(), 8 + sent);
    }

    #[test]
    fn the_guard_writes_what_is_left() {
        let sink = Shared::default();
        let pending = Arc::new(Pending::new(Box::new(sink.clone())));
        Batched {
            pending: Arc::clone(&pending),
        }
        .make_writer()
        .write_all(b"last words\n")
        .expect("write");
        drop(LogGuard {
            pending: Some(pending),
        });
        assert_eq!(written(&sink), b"last words\n");
    }
}
