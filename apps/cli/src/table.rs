//! Compact, aligned text tables for human output.

/// Longest a cell is shown; longer text is cut with an ellipsis.
const MAX_CELL: usize = 40;

/// Prints `headers` and `rows` as columns separated by two spaces.
pub fn print(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render(headers, rows));
}

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cut: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| shorten(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cut {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(&cut) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One line, at most [`MAX_CELL`] characters: control characters (a newline in a name) would
/// break the table.
fn shorten(cell: &str) -> String {
    let clean: String = cell
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= MAX_CELL {
        clean
    } else {
        let mut short: String = clean.chars().take(MAX_CELL - 1).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_long_cells_are_cut() {
        let long = "x".repeat(50);
        let text = render(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "Acme\nLabs".into()],
                vec!["22".into(), long],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID  NAME");
        assert_eq!(lines[1], "1   Acme Labs");
        assert_eq!(lines[2], format!("22  {}…", "x".repeat(39)));
    }
}
