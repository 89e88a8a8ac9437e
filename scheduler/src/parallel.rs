//! Splitting per-node work (filtering, scoring) over threads: scoped threads pull chunks of
//! the index range from a shared counter until the range is done or the caller says stop.
//! Small inputs run on the calling thread: starting threads costs more than it saves there.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Below this many items the work runs on the calling thread.
pub const MIN_PARALLEL_ITEMS: usize = 1024;

/// Runs `work` on consecutive chunks of `0..total` (each at most `chunk` long) on up to
/// `threads` threads, until every chunk is done or `stop` is set. Returns the results of the
/// chunks that ran, ordered by chunk start.
pub fn chunks<R, F>(
    threads: usize,
    total: usize,
    chunk: usize,
    stop: &AtomicBool,
    work: F,
) -> Vec<R>
where
    R: Send,
    F: Fn(Range<usize>) -> R + Sync,
{
    let chunk = chunk.max(1);
    let n_chunks = total.div_ceil(chunk);
    let threads = threads.clamp(1, n_chunks.max(1));
    if threads == 1 || total < MIN_PARALLEL_ITEMS {
        let mut out = Vec::new();
        for c in 0..n_chunks {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            out.push(work(c * chunk..((c + 1) * chunk).min(total)));
        }
        return out;
    }
    let next = AtomicUsize::new(0);
    let run = || {
        let mut mine = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= n_chunks {
                break;
            }
            mine.push((c, work(c * chunk..((c + 1) * chunk).min(total))));
        }
        mine
    };
    let mut all: Vec<(usize, R)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(run)).collect();
        let mut all = run();
        for h in helpers {
            match h.join() {
                Ok(v) => all.extend(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_by_key(|(c, _)| *c);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_every_item_once_in_order() {
        let stop = AtomicBool::new(false);
        for (threads, total) in [(1, 10), (4, 10_000), (3, 1025), (2, 0)] {
            let out = chunks(threads, total, 100, &stop, |r| r.collect::<Vec<_>>());
            let flat: Vec<usize> = out.into_iter().flatten().collect();
            assert_eq!(flat, (0..total).collect::<Vec<_>>(), "{threads} {total}");
        }
    }

    #[test]
    fn stops_early() {
        let stop = AtomicBool::new(false);
        let out = chunks(2, 100_000, 100, &stop, |r| {
            if r.start >= 5_000 {
                stop.store(true, Ordering::Relaxed);
            }
            r.len()
        });
        let done: usize = out.iter().sum();
        assert!(done < 100_000, "stopped after {done}");
        assert!(done >= 5_100);
    }
}
