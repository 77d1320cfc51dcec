//! The monthly inter-province statement of the family wallet (U4): what went to each
//! destination province in a month, net of what came back, made from the month's daily
//! settlements once every day of the month is settled. Settled days are sealed (S1), so the
//! month is too: no movement ever carries one of its dates again, and a second run reproduces
//! the statement and its digest.

use chrono::{Datelike, NaiveDate};
use gongji_shared::RegionCode;
use sha2::{Digest, Sha256};

/// What went to one destination province in the month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletLine {
    pub destination: RegionCode,
    pub transferred_fen: i64,
    pub returned_fen: i64,
    pub transfer_count: i64,
    pub return_count: i64,
}

impl WalletLine {
    /// Transferred less returned: what the destination province is owed.
    pub fn net_fen(&self) -> i64 {
        self.transferred_fen - self.returned_fen
    }
}

/// The statement of one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletStatement {
    /// The month's first day.
    pub month: NaiveDate,
    /// Ordered by destination province.
    pub lines: Vec<WalletLine>,
    /// Hex SHA-256 over the month's daily settlement digests and the lines.
    pub digest: String,
}

/// The days of the month that starts on `first`.
pub fn days_of(first: NaiveDate) -> Vec<NaiveDate> {
    first
        .iter_days()
        .take_while(|d| d.month() == first.month() && d.year() == first.year())
        .collect()
}

/// The first day of the month named `YYYY-MM`.
pub fn parse_month(month: &str) -> Option<NaiveDate> {
    let b = month.as_bytes();
    if b.len() != 7 || b[4] != b'-' {
        return None;
    }
    NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()
}

/// The statement of the month starting `first`, from each of its days' settlement digest (in
/// day order) and its family wallet lines: the same inputs always give the same digest.
pub fn statement(
    first: NaiveDate,
    day_digests: &[(NaiveDate, String)],
    mut lines: Vec<WalletLine>,
) -> WalletStatement {
    lines.sort_by(|a, b| a.destination.cmp(&b.destination));
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "gongji-wallet-statement-v1|{}\n",
        first.format("%Y-%m")
    ));
    for (day, digest) in day_digests {
        hasher.update(format!("day|{day}|{digest}\n"));
    }
    for l in &lines {
        hasher.update(format!(
            "line|{}|{}|{}|{}|{}\n",
            l.destination, l.transferred_fen, l.returned_fen, l.transfer_count, l.return_count
        ));
    }
    WalletStatement {
        month: first,
        lines,
        digest: hex::encode(hasher.finalize()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(destination: &str, transferred_fen: i64) -> WalletLine {
        WalletLine {
            destination: RegionCode::parse(destination).unwrap(),
            transferred_fen,
            returned_fen: 0,
            transfer_count: 1,
            return_count: 0,
        }
    }

    #[test]
    fn a_month_has_its_days_and_a_name() {
        let feb = parse_month("2028-02").unwrap();
        assert_eq!(days_of(feb).len(), 29);
        assert_eq!(days_of(parse_month("2026-11").unwrap()).len(), 30);
        assert_eq!(parse_month("2026-13"), None);
        assert_eq!(parse_month("2026-1"), None);
        assert_eq!(parse_month("2026-11-01"), None);
    }

    #[test]
    fn the_digest_reproduces_whatever_the_order_of_lines_and_changes_with_content() {
        let first = parse_month("2026-11").unwrap();
        let days = vec![(first, "abc".to_owned())];
        let a = statement(first, &days, vec![line("320000", 100), line("110000", 5)]);
        let b = statement(first, &days, vec![line("110000", 5), line("320000", 100)]);
        assert_eq!(a, b);
        assert_eq!(a.lines[0].destination.as_str(), "110000");
        let c = statement(first, &days, vec![line("110000", 5), line("320000", 101)]);
        assert_ne!(a.digest, c.digest);
        let other_day = vec![(first, "abd".to_owned())];
        assert_ne!(
            statement(first, &other_day, a.lines.clone()).digest,
            a.digest
        );
    }
}
