//! Writing to stdout and stderr as commands go (so long operations show progress), quietly
//! stopping when the reader closes the pipe (`rkubectl get pods | head`).

use std::io::Write;

/// Writes text to stdout and flushes it.
pub fn out(s: &str) {
    if s.is_empty() {
        return;
    }
    let mut o = std::io::stdout().lock();
    if o.write_all(s.as_bytes()).and_then(|_| o.flush()).is_err() {
        // The reader went away: nothing more to print.
        std::process::exit(0);
    }
}

/// Writes a line to stdout.
pub fn outln(s: &str) {
    out(&format!("{s}\n"));
}

/// Writes a line to stderr.
pub fn errln(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{s}");
}
