//! Container logs in the CRI format (`<RFC3339Nano> <stdout|stderr> <P|F> <content>`, one
//! line per record, `P` marking a partial line continued by the next record): parsing, and
//! streaming a log file with kubectl's options — tail, since, timestamps, byte limit, follow.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

/// Why a log line could not be parsed or a log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The line is not in the CRI format.
    #[error("malformed CRI log line: {0:?}")]
    Malformed(String),
    /// The file could not be read.
    #[error("reading log file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Which stream a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One parsed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When the runtime wrote it.
    pub timestamp: jiff::Timestamp,
    /// The original timestamp text (printed as is with `timestamps=true`).
    pub timestamp_text: String,
    /// stdout or stderr.
    pub stream: Stream,
    /// A partial line, continued by the next record.
    pub partial: bool,
    /// The content, without the newline.
    pub content: Vec<u8>,
}

/// Parses one record (with or without its trailing newline).
pub fn parse_line(line: &[u8]) -> Result<LogLine, LogError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let bad = || LogError::Malformed(String::from_utf8_lossy(line).chars().take(200).collect());
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = parts.next().ok_or_else(bad)?;
    let stream = parts.next().ok_or_else(bad)?;
    let tag = parts.next().ok_or_else(bad)?;
    let content = parts.next().unwrap_or_default();
    let ts_text = std::str::from_utf8(ts).map_err(|_| bad())?;
    let timestamp: jiff::Timestamp = ts_text.parse().map_err(|_| bad())?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(bad()),
    };
    // Tags are `:`-separated; the first is P (partial) or F (full).
    let partial = match tag.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(bad()),
    };
    Ok(LogLine {
        timestamp,
        timestamp_text: ts_text.to_string(),
        stream,
        partial,
        content: content.to_vec(),
    })
}

/// What to read (kubectl logs' options as the kubelet receives them).
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Keep streaming while the container runs.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<i64>,
    /// Only lines written at or after this time.
    pub since: Option<jiff::Timestamp>,
}

/// The offset of the start of the last `n` lines of `file` (0 when it has fewer).
async fn tail_offset(file: &mut tokio::fs::File, n: i64) -> std::io::Result<u64> {
    let len = file.metadata().await?.len();
    if n <= 0 {
        return Ok(len);
    }
    let mut pos = len;
    let mut newlines = 0i64;
    let mut buf = vec![0u8; 64 * 1024];
    // The final newline ends the last line; it does not start a new one.
    let mut skip_final = true;
    while pos > 0 {
        let step = (pos as usize).min(buf.len());
        pos -= step as u64;
        file.seek(SeekFrom::Start(pos)).await?;
        file.read_exact(&mut buf[..step]).await?;
        for i in (0..step).rev() {
            if buf[i] == b'\n' {
                if skip_final && pos + i as u64 == len - 1 {
                    skip_final = false;
                    continue;
                }
                skip_final = false;
                newlines += 1;
                if newlines == n {
                    return Ok(pos + i as u64 + 1);
                }
            } else {
                skip_final = false;
            }
        }
    }
    Ok(0)
}

/// Streams a CRI log file into `out` as kubectl shows it. With `follow`, keeps waiting for
/// new lines until `still_running` says the container has exited and the file is drained,
/// or the receiver is dropped.
pub async fn stream_log<F>(
    path: &Path,
    opts: &LogOptions,
    out: mpsc::Sender<Bytes>,
    still_running: F,
) -> Result<(), LogError>
where
    F: Fn() -> futures::future::BoxFuture<'static, bool>,
{
    let io = |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        // A container that never wrote anything may have no file yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !opts.follow => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    let start = match opts.tail_lines {
        Some(n) => tail_offset(&mut file, n).await.map_err(io)?,
        None => 0,
    };
    file.seek(SeekFrom::Start(start)).await.map_err(io)?;
    let mut reader = BufReader::new(file);
    let mut remaining = opts.limit_bytes.filter(|l| *l > 0).map(|l| l as usize);
    let mut line = Vec::new();
    let mut at_line_start = true;
    let mut last_check = tokio::time::Instant::now();
    let mut exited = false;
    loop {
        let n = reader.read_until(b'\n', &mut line).await.map_err(io)?;
        if n == 0 || !line.ends_with(b"\n") {
            // At the end of what has been written so far.
            if !opts.follow || exited {
                return Ok(());
            }
            if out.is_closed() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if last_check.elapsed() >= Duration::from_millis(500) {
                last_check = tokio::time::Instant::now();
                if !still_running().await {
                    // Drain what the runtime wrote before the exit, then stop.
                    exited = true;
                }
            }
            continue;
        }
        let record = std::mem::take(&mut line);
        let parsed = match parse_line(&record) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "skipping log line");
                continue;
            }
        };
        if opts.since.is_some_and(|s| parsed.timestamp < s) {
            continue;
        }
        let mut chunk = Vec::with_capacity(parsed.content.len() + 40);
        if opts.timestamps && at_line_start {
            chunk.extend_from_slice(parsed.timestamp_text.as_bytes());
            chunk.push(b' ');
        }
        chunk.extend_from_slice(&parsed.content);
        if !parsed.partial {
            chunk.push(b'\n');
        }
        at_line_start = !parsed.partial;
        if let Some(rem) = remaining.as_mut() {
            if chunk.len() >= *rem {
                chunk.truncate(*rem);
                let _ = out.send(Bytes::from(chunk)).await;
                return Ok(());
            }
            *rem -= chunk.len();
        }
        if out.send(Bytes::from(chunk)).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2024-01-02T03:04:05.000000001Z stdout F one\n\
2024-01-02T03:04:06.5Z stderr F two\n\
2024-01-02T03:04:07Z stdout P thr\n\
2024-01-02T03:04:07.1Z stdout F ee\n\
2024-01-02T03:04:08Z stdout F \n\
2024-01-02T03:04:09Z stdout F five\n";

    #[test]
    fn parses_records() {
        let l = parse_line(b"2016-10-06T00:17:09.669794202Z stdout F log content 1\n").unwrap();
        assert_eq!(l.stream, Stream::Stdout);
        assert!(!l.partial);
        assert_eq!(l.content, b"log content 1");
        assert_eq!(l.timestamp_text, "2016-10-06T00:17:09.669794202Z");
        let l = parse_line(b"2016-10-06T00:17:10.113242941Z stderr P log cont").unwrap();
        assert_eq!(l.stream, Stream::Stderr);
        assert!(l.partial);
        let l = parse_line(b"2016-10-06T00:17:10Z stdout F").unwrap();
        assert!(l.content.is_empty());
        for bad in [
            &b"garbage"[..],
            b"2016-10-06T00:17:10Z stdin F x",
            b"notatime stdout F x",
            b"2016-10-06T00:17:10Z stdout X x",
        ] {
            assert!(parse_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    async fn read(opts: LogOptions) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG).unwrap();
        let (tx, mut rx) = mpsc::channel(100);
        stream_log(&path, &opts, tx, || Box::pin(async { false }))
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn options() {
        assert_eq!(read(Default::default()).await, "one\ntwo\nthree\n\nfive\n");
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..Default::default()
        };
        assert_eq!(read(tail(1)).await, "five\n");
        assert_eq!(read(tail(2)).await, "\nfive\n");
        // Tail counts records: the last 3 start in the middle of "three".
        assert_eq!(read(tail(3)).await, "ee\n\nfive\n");
        assert_eq!(read(tail(4)).await, "three\n\nfive\n");
        assert_eq!(read(tail(100)).await, "one\ntwo\nthree\n\nfive\n");
        assert_eq!(read(tail(0)).await, "");
        let ts = read(LogOptions {
            timestamps: true,
            tail_lines: Some(2),
            ..Default::default()
        })
        .await;
        assert_eq!(ts, "2024-01-02T03:04:08Z \n2024-01-02T03:04:09Z five\n");
        let limited = read(LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        })
        .await;
        assert_eq!(limited, "one\ntw");
        let since = read(LogOptions {
            since: Some("2024-01-02T03:04:07Z".parse().unwrap()),
            ..Default::default()
        })
        .await;
        assert_eq!(since, "three\n\nfive\n");
    }

    #[tokio::test]
    async fn follow_streams_appended_lines_until_exit() {
        use std::io::Write;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, "2024-01-02T03:04:05Z stdout F first\n").unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let (tx, mut rx) = mpsc::channel(100);
        let r = running.clone();
        let p = path.clone();
        let task = tokio::spawn(async move {
            let opts = LogOptions {
                follow: true,
                ..Default::default()
            };
            stream_log(&p, &opts, tx, move || {
                let r = r.clone();
                Box::pin(async move { r.load(Ordering::SeqCst) })
            })
            .await
        });
        assert_eq!(&rx.recv().await.unwrap()[..], b"first\n");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // A half-written record is not emitted until its newline arrives.
        f.write_all(b"2024-01-02T03:04:06Z stdout F sec").unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(rx.try_recv().is_err());
        f.write_all(b"ond\n").unwrap();
        f.flush().unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"second\n");
        // The container writes its last line, then exits.
        f.write_all(b"2024-01-02T03:04:07Z stdout F last\n")
            .unwrap();
        f.flush().unwrap();
        running.store(false, Ordering::SeqCst);
        assert_eq!(&rx.recv().await.unwrap()[..], b"last\n");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("follow ends after the container exits")
            .unwrap()
            .unwrap();
        assert!(rx.recv().await.is_none());
    }
}
