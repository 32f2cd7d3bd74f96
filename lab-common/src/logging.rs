//! Logging set-up: `tracing` to stderr, filtered by `RUST_LOG`, in a
//! format a learner reads as sentences, built from structured fields.
//!
//! The steps log with spans and fields, not with addresses pasted into
//! strings: each connection's task runs in a span that carries its
//! `client` (and its `backend`, once there is one), and an event that
//! reports a failure says in which `phase` it happened (`dial`, `relay`,
//! `client TLS handshake`...) and carries the `error`. Everything logged
//! inside the span, rustls' own messages at `RUST_LOG=debug` included, is
//! then about that connection, and a program can pick the fields apart.
//!
//! Two formats, chosen with `LAB_LOG_FORMAT`:
//!
//! - readable (the default): one sentence per event, the span's fields
//!   first, then the phase, the message and the error, each ended by a
//!   colon:
//!
//!   ```text
//!   2026-11-21T09:10:36.544155Z  INFO client 127.0.0.1:52174 -> backend 127.0.0.1:4444: 78 bytes up, 230 bytes down
//!   2026-11-21T09:08:24.042864Z  WARN client 127.0.0.1:41048 -> backend 127.0.0.1:4447: dial: Connection refused (os error 111)
//!   ```
//!
//!   `client` and `backend`, of the span or the event, read as "client A
//!   -> backend B"; any other field follows as `(name: value)`.
//! - `json`: one JSON object per event, with the event's fields and the
//!   fields of every span it is in, for a program to read.
//!
//! `lb`, whose events carry their fields themselves, asks for
//! [`Format::FlatJson`] instead: one flat object per line, the event's
//! fields beside `timestamp`, `level` and `message`, which a log shipper
//! reads without unnesting; [`json_line`] writes its stdout lines the
//! same way.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber, span};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{
    FmtContext, FormatEvent, FormatFields, MakeWriter,
};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Logs go to stderr so that stdout carries only what a step prints on
/// purpose (the "listening on" line, step 01's raw bytes). Without
/// `RUST_LOG`, info and above are shown. Colours only on a terminal (and
/// not with `NO_COLOR` set), so log files stay plain text.
pub fn init() {
    init_as(format_from_env().unwrap_or(Format::Readable));
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A sentence per event (the default).
    Readable,
    /// A JSON object per event, span fields nested (`LAB_LOG_FORMAT=json`).
    Json,
    /// A flat JSON object per event, for a program that has no spans.
    FlatJson,
}

/// The format `LAB_LOG_FORMAT` asks for, if it is set: `json` for JSON,
/// anything else for the readable format.
pub fn format_from_env() -> Option<Format> {
    match std::env::var("LAB_LOG_FORMAT").ok()?.as_str() {
        "json" => Some(Format::Json),
        _ => Some(Format::Readable),
    }
}

/// [`init`] in a given format.
pub fn init_as(format: Format) {
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    // A RUST_LOG that does not parse is said, not silently replaced: the
    // user asked for something and would otherwise wonder where it went.
    let mut bad_filter = None;
    let filter = match std::env::var("RUST_LOG") {
        Ok(wanted) => EnvFilter::try_new(&wanted).unwrap_or_else(|err| {
            bad_filter = Some(format!(
                "RUST_LOG={wanted:?} is not a filter ({err}); logging at info"
            ));
            EnvFilter::new("info")
        }),
        Err(_) => EnvFilter::new("info"),
    };
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (two runners in one test binary) is harmless.
    let _ = match format {
        Format::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        Format::FlatJson => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        Format::Readable => {
            registry.with(readable(std::io::stderr, colour)).try_init()
        }
    };
    if let Some(warning) = bad_filter {
        tracing::warn!("{warning}");
    }
}

/// One flat JSON log line, as [`Format::FlatJson`] writes an event:
/// `timestamp`, `level` and `message`, then `fields`.
pub fn json_line(
    level: Level,
    message: &str,
    fields: &[(&str, &str)],
) -> String {
    let mut timestamp = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    // In the order tracing-subscriber writes them (a serde_json map
    // would sort the keys).
    let quote = |text: &str| serde_json::Value::from(text).to_string();
    let mut line = format!(
        "{{\"timestamp\":{},\"level\":{},\"message\":{}",
        quote(&timestamp),
        quote(level.as_str()),
        quote(message)
    );
    for (name, value) in fields {
        let _ = write!(line, ",{}:{}", quote(name), quote(value));
    }
    line.push('}');
    line
}

/// The readable format as a layer writing to `writer`, for a subscriber
/// built elsewhere (a test's, say).
pub fn readable<S, W>(writer: W, colour: bool) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let format = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(colour)
        .event_format(Readable);
    SpanFields.and_then(format)
}

/// A span's or an event's fields as `name, value` text, in order.
#[derive(Default)]
struct Fields(Vec<(&'static str, String)>);

impl Fields {
    fn set(&mut self, name: &'static str, value: String) {
        match self.0.iter_mut().find(|(known, _)| *known == name) {
            Some((_, old)) => *old = value,
            None => self.0.push((name, value)),
        }
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let at = self.0.iter().position(|(known, _)| *known == name)?;
        Some(self.0.remove(at).1)
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    /// Every other kind of value; `%value` fields arrive here and print
    /// with `Display`.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }

    /// An error recorded as one (`error = &err as &dyn Error`): its
    /// message and each of its causes, `outer: inner: innermost`, since
    /// the outer message alone ("client error (Connect)") rarely says
    /// what happened.
    fn record_error(
        &mut self,
        field: &Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.set(field.name(), error_chain(value));
    }
}

/// An error and each of its causes, `outer: inner: innermost`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(error) = cause {
        let _ = write!(text, ": {error}");
        cause = error.source();
    }
    text
}

/// Keeps each span's fields with the span (as text), for [`Readable`].
struct SpanFields;

impl<S> Layer<S> for SpanFields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &span::Attributes<'_>,
        id: &span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    /// A field given its value after the span began (`Span::record`).
    fn on_record(
        &self,
        id: &span::Id,
        values: &span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }
}

/// `TIME LEVEL client A -> backend B: PHASE: MESSAGE: ERROR (name: value)`,
/// leaving out what an event does not have.
struct Readable;

impl<S, N> FormatEvent<S, N> for Readable
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let colour = writer.has_ansi_escapes();
        let (dim, reset) = if colour {
            ("\x1b[2m", "\x1b[0m")
        } else {
            ("", "")
        };
        write!(writer, "{dim}")?;
        SystemTime.format_time(&mut writer)?;
        let level = *event.metadata().level();
        let tint = match (colour, level) {
            (false, _) => "",
            (true, Level::ERROR) => "\x1b[31m",
            (true, Level::WARN) => "\x1b[33m",
            (true, Level::INFO) => "\x1b[32m",
            (true, Level::DEBUG) => "\x1b[34m",
            (true, Level::TRACE) => "\x1b[35m",
        };
        write!(writer, "{reset} {tint}{level:>5}{reset} ")?;

        // The spans' fields, outermost span first: the ends of the
        // connection, then anything else about it.
        let mut ends = Vec::new();
        let mut about = String::new();
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            let extensions = span.extensions();
            let Some(fields) = extensions.get::<Fields>() else {
                continue;
            };
            for (name, value) in &fields.0 {
                match *name {
                    "client" | "backend" => {
                        ends.push(format!("{name} {value}"))
                    }
                    _ => {
                        let _ = write!(about, " ({name}: {value})");
                    }
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        // An event may name the ends itself (a line logged outside any
        // connection's span, or once the connection is over).
        for name in ["client", "backend"] {
            if let Some(value) = fields.take(name) {
                ends.push(format!("{name} {value}"));
            }
        }
        let context = format!("{}{about}", ends.join(" -> "));
        let mut extras = String::new();
        let sentence: Vec<String> = [
            Some(context.trim_start().to_owned()),
            fields.take("phase"),
            fields.take("message"),
            fields.take("error"),
        ]
        .into_iter()
        .flatten()
        .filter(|part| !part.is_empty())
        .collect();
        for (name, value) in &fields.0 {
            let _ = write!(extras, " ({name}: {value})");
        }
        writeln!(writer, "{}{extras}", sentence.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing::{info, info_span, warn};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A writer into a buffer the test reads.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    /// The lines `log` writes, without their timestamps.
    fn logged(log: impl FnOnce()) -> Vec<String> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(readable(buffer.clone(), false));
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| {
                let (time, rest) = line.split_once(' ').unwrap();
                assert!(time.ends_with('Z') && time.contains('T'), "{line}");
                rest.to_owned()
            })
            .collect()
    }

    #[test]
    fn an_error_is_shown_with_its_causes() {
        let inner = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        let outer = io::Error::other(Chain("connect failed", inner));
        let lines = logged(|| {
            warn!(error = &outer as &dyn std::error::Error, "no answer");
        });
        assert_eq!(lines, [" WARN no answer: connect failed: refused"]);
    }

    /// An error with a cause, as hyper's are.
    #[derive(Debug)]
    struct Chain(&'static str, io::Error);

    impl fmt::Display for Chain {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Chain {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn client_and_backend_fields_of_an_event_read_as_its_ends_too() {
        let lines = logged(|| {
            info!(client = "127.0.0.1:1", backend = "b", up = 3, "closed");
            warn!(backend = "b", phase = "health", "DOWN");
        });
        assert_eq!(
            lines,
            [
                " INFO client 127.0.0.1:1 -> backend b: closed (up: 3)",
                " WARN backend b: health: DOWN",
            ]
        );
    }

    #[test]
    fn a_connection_span_reads_as_client_to_backend() {
        let lines = logged(|| {
            let span = info_span!(
                "conn",
                client = "127.0.0.1:52174",
                backend = "127.0.0.1:4444"
            );
            let _inside = span.enter();
            info!("78 bytes up, 230 bytes down");
            warn!(phase = "dial", error = "Connection refused (os error 111)");
        });
        assert_eq!(
            lines,
            [
                " INFO client 127.0.0.1:52174 -> backend 127.0.0.1:4444: \
                 78 bytes up, 230 bytes down",
                " WARN client 127.0.0.1:52174 -> backend 127.0.0.1:4444: \
                 dial: Connection refused (os error 111)",
            ]
        );
    }

    #[test]
    fn fields_recorded_later_and_other_fields_are_shown() {
        let lines = logged(|| {
            let span = info_span!(
                "conn",
                client = "127.0.0.1:1",
                backend = tracing::field::Empty,
                certificate = "checked"
            );
            let _inside = span.enter();
            info!("before");
            span.record("backend", "tls://127.0.0.1:4445");
            info!(attempt = 2, "after");
        });
        assert_eq!(
            lines,
            [
                " INFO client 127.0.0.1:1 (certificate: checked): before",
                " INFO client 127.0.0.1:1 -> backend tls://127.0.0.1:4445 \
                 (certificate: checked): after (attempt: 2)",
            ]
        );
    }

    #[test]
    fn an_event_outside_any_span_is_its_message_and_error() {
        let lines = logged(|| {
            warn!(error = "Too many open files", "accept failed");
            info!("Ctrl-C");
        });
        assert_eq!(
            lines,
            [" WARN accept failed: Too many open files", " INFO Ctrl-C"]
        );
    }
}
