//! Designated institutions (定点医药机构, M1): the hospitals and pharmacies whose charges the
//! personal account may pay, as the core insurance system syncs them, each designated from a
//! first day to a last (open-ended when none).

use chrono::NaiveDate;
use gongji_shared::RegionCode;

use super::medical::InstitutionKind;

/// Most institutions one sync call carries: a bound on the work of one transaction.
pub const MAX_BATCH_INSTITUTIONS: usize = 500;
/// Longest institution code.
pub const MAX_CODE_LEN: usize = 32;
/// Longest institution name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// A designated hospital or pharmacy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesignatedInstitution {
    pub code: String,
    pub kind: InstitutionKind,
    /// Where it is: its pooling region.
    pub region: RegionCode,
    pub name: String,
    pub designated_from: NaiveDate,
    /// The last day of the designation; `None`: open-ended.
    pub designated_until: Option<NaiveDate>,
}

/// Why a charge cannot be paid at an institution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotDesignated {
    /// The institution is not in the registry.
    Unknown,
    /// It is designated as the other kind (a pharmacy's code named as a hospital's).
    OtherKind { designated: InstitutionKind },
    /// The day is outside its designation.
    NotOnDay,
}

/// Why a batch of institutions is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// No institutions, or more than [`MAX_BATCH_INSTITUTIONS`].
    Size { len: usize },
    /// One code twice, at these positions.
    Duplicate { first: usize, second: usize },
    /// A designation that ends before it begins, at this position.
    Range { index: usize },
}

/// Whether a charge of `kind` on `day` may be paid at `found` (the registry's record of the
/// code, if any).
pub fn check(
    found: Option<&DesignatedInstitution>,
    kind: InstitutionKind,
    day: NaiveDate,
) -> Result<(), NotDesignated> {
    let institution = found.ok_or(NotDesignated::Unknown)?;
    if institution.kind != kind {
        return Err(NotDesignated::OtherKind {
            designated: institution.kind,
        });
    }
    let ended = institution.designated_until.is_some_and(|u| day > u);
    if day < institution.designated_from || ended {
        return Err(NotDesignated::NotOnDay);
    }
    Ok(())
}

/// A batch to sync: 1 to [`MAX_BATCH_INSTITUTIONS`] institutions, each code once, each
/// designation ending no earlier than it begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstitutionBatch(Vec<DesignatedInstitution>);

impl InstitutionBatch {
    pub fn parse(institutions: Vec<DesignatedInstitution>) -> Result<Self, BatchError> {
        let len = institutions.len();
        if len == 0 || len > MAX_BATCH_INSTITUTIONS {
            return Err(BatchError::Size { len });
        }
        let mut seen = std::collections::HashMap::with_capacity(len);
        for (index, i) in institutions.iter().enumerate() {
            if i.designated_until.is_some_and(|u| u < i.designated_from) {
                return Err(BatchError::Range { index });
            }
            if let Some(first) = seen.insert(i.code.as_str(), index) {
                return Err(BatchError::Duplicate {
                    first,
                    second: index,
                });
            }
        }
        Ok(Self(institutions))
    }

    pub fn institutions(&self) -> &[DesignatedInstitution] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn hospital(code: &str, from: &str, until: Option<&str>) -> DesignatedInstitution {
        DesignatedInstitution {
            code: code.into(),
            kind: InstitutionKind::Hospital,
            region: RegionCode::parse("340500").unwrap(),
            name: "马鞍山市人民医院".into(),
            designated_from: day(from),
            designated_until: until.map(day),
        }
    }

    #[test]
    fn a_charge_is_paid_within_the_designation_and_of_its_kind_only() {
        let h = hospital("H1", "2024-01-01", Some("2024-12-31"));
        let kind = InstitutionKind::Hospital;
        assert_eq!(check(Some(&h), kind, day("2024-01-01")), Ok(()));
        assert_eq!(check(Some(&h), kind, day("2024-12-31")), Ok(()));
        assert_eq!(
            check(Some(&h), kind, day("2023-12-31")),
            Err(NotDesignated::NotOnDay)
        );
        assert_eq!(
            check(Some(&h), kind, day("2025-01-01")),
            Err(NotDesignated::NotOnDay)
        );
        assert_eq!(
            check(Some(&h), InstitutionKind::Pharmacy, day("2024-06-01")),
            Err(NotDesignated::OtherKind { designated: kind })
        );
        assert_eq!(
            check(None, kind, day("2024-06-01")),
            Err(NotDesignated::Unknown)
        );
        let open = hospital("H1", "2024-01-01", None);
        assert_eq!(check(Some(&open), kind, day("2099-01-01")), Ok(()));
    }

    #[test]
    fn a_batch_is_bounded_with_each_code_once_and_ranges_in_order() {
        assert_eq!(
            InstitutionBatch::parse(Vec::new()),
            Err(BatchError::Size { len: 0 })
        );
        let many = vec![hospital("H1", "2024-01-01", None); MAX_BATCH_INSTITUTIONS + 1];
        assert_eq!(
            InstitutionBatch::parse(many),
            Err(BatchError::Size {
                len: MAX_BATCH_INSTITUTIONS + 1
            })
        );
        let twice = vec![
            hospital("H1", "2024-01-01", None),
            hospital("H2", "2024-01-01", None),
            hospital("H1", "2024-01-01", None),
        ];
        assert_eq!(
            InstitutionBatch::parse(twice),
            Err(BatchError::Duplicate {
                first: 0,
                second: 2
            })
        );
        let reversed = vec![hospital("H1", "2024-02-01", Some("2024-01-31"))];
        assert_eq!(
            InstitutionBatch::parse(reversed),
            Err(BatchError::Range { index: 0 })
        );
        let one_day = vec![hospital("H1", "2024-02-01", Some("2024-02-01"))];
        assert_eq!(
            InstitutionBatch::parse(one_day.clone())
                .unwrap()
                .institutions(),
            one_day
        );
    }
}
