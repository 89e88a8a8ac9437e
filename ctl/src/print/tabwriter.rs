//! Go's `text/tabwriter` as kubectl configures it (minimum width 6, padding 3, spaces,
//! widths remembered across flushes): tab-terminated cells of consecutive lines form
//! columns, each as wide as its widest cell plus the padding; the last cell of a line is not
//! padded. Porting the algorithm, rather than approximating it, keeps the tables
//! byte-identical to kubectl's.

/// kubectl's minimum column width.
pub const MIN_WIDTH: usize = 6;
/// kubectl's padding between columns.
pub const PADDING: usize = 3;

/// Buffers text with tab-separated cells and aligns it on [`TabWriter::flush`].
#[derive(Debug)]
pub struct TabWriter {
    buf: String,
    /// Column widths of earlier flushes (columns never shrink while remembered).
    remembered: Vec<usize>,
    min_width: usize,
    padding: usize,
    remember: bool,
}

impl Default for TabWriter {
    fn default() -> Self {
        TabWriter {
            buf: String::new(),
            remembered: Vec::new(),
            min_width: MIN_WIDTH,
            padding: PADDING,
            remember: true,
        }
    }
}

struct Cell<'a> {
    text: &'a str,
    width: usize,
}

impl TabWriter {
    /// A writer with kubectl's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer with other settings and no remembered widths (`describe` uses minimum width
    /// 0 and padding 2).
    pub fn with(min_width: usize, padding: usize) -> Self {
        TabWriter {
            min_width,
            padding,
            remember: false,
            ..Default::default()
        }
    }

    /// Adds text (cells separated by `\t`, lines by `\n`).
    pub fn write(&mut self, s: &str) {
        self.buf.push_str(s);
    }

    /// Forgets the remembered widths (a new table starts).
    pub fn reset_widths(&mut self) {
        self.remembered.clear();
    }

    /// Aligns and returns the buffered text.
    pub fn flush(&mut self) -> String {
        let text = std::mem::take(&mut self.buf);
        let lines: Vec<Vec<Cell<'_>>> = text
            .split('\n')
            .map(|l| {
                l.split('\t')
                    .map(|t| Cell {
                        text: t,
                        width: t.chars().count(),
                    })
                    .collect()
            })
            .collect();
        let mut out = String::with_capacity(text.len() * 2);
        let mut widths = Vec::new();
        self.format(&mut out, &lines, &mut widths, 0, lines.len());
        out
    }

    fn format(
        &mut self,
        out: &mut String,
        lines: &[Vec<Cell<'_>>],
        widths: &mut Vec<usize>,
        mut line0: usize,
        line1: usize,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            write_lines(out, lines, widths, line0, this);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 {
                let line = &lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                width = width.max(line[column].width + self.padding);
                this += 1;
            }
            if !self.remember {
            } else if let Some(w) = self.remembered.get_mut(column) {
                if width < *w {
                    width = *w;
                } else {
                    *w = width;
                }
            } else {
                self.remembered.resize(column + 1, 0);
                self.remembered[column] = width;
            }
            widths.push(width);
            self.format(out, lines, widths, line0, this);
            widths.pop();
            line0 = this;
        }
        write_lines(out, lines, widths, line0, line1);
    }
}

fn write_lines(
    out: &mut String,
    lines: &[Vec<Cell<'_>>],
    widths: &[usize],
    line0: usize,
    line1: usize,
) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, c) in line.iter().enumerate() {
            out.push_str(c.text);
            if j < widths.len() && j + 1 < line.len() {
                for _ in c.width..widths[j] {
                    out.push(' ');
                }
            }
        }
        if i + 1 != lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_kubectl() {
        let mut w = TabWriter::new();
        w.write("NAME\tREADY\tSTATUS\tRESTARTS\tAGE\n");
        w.write("web-1\t0/1\tPending\t0\t5s\n");
        w.write("a\t1/1\tRunning\t10\t100d\n");
        assert_eq!(
            w.flush(),
            "NAME    READY   STATUS    RESTARTS   AGE\n\
             web-1   0/1     Pending   0          5s\n\
             a       1/1     Running   10         100d\n"
        );
    }

    #[test]
    fn min_width_applies_and_last_cell_is_not_padded() {
        let mut w = TabWriter::new();
        w.write("IP\tX\n\t1\n");
        assert_eq!(w.flush(), "IP    X\n      1\n");
        let mut fresh = TabWriter::new();
        assert_eq!(fresh.flush(), "");
    }

    #[test]
    fn remembered_widths_never_shrink() {
        let mut w = TabWriter::new();
        w.write("NAME\tAGE\nlong-name-here\t1s\n");
        let _ = w.flush();
        w.write("a\t2s\n");
        assert_eq!(w.flush(), "a                2s\n");
        w.reset_widths();
        w.write("a\t2s\n");
        assert_eq!(w.flush(), "a     2s\n");
    }
}
