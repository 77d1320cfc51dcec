//! The beneficiary's relationship to the authorizer.

use std::{fmt, str::FromStr};

use serde::Deserialize;

/// Relationship of the beneficiary to the authorizer: `Child` means the beneficiary is the
/// authorizer's child. Spouse, parent and child are the seed's set; the others are the
/// national close-relative (近亲属) widening, allowed only where the policy says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Relationship {
    Spouse,
    Parent,
    Child,
    Sibling,
    Grandparent,
    Grandchild,
}

/// The name is not a relationship.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown relationship {0:?}; expected one of SPOUSE, PARENT, CHILD, SIBLING, GRANDPARENT, GRANDCHILD"
)]
pub struct UnknownRelationship(pub String);

impl Relationship {
    /// Every relationship, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Spouse,
        Self::Parent,
        Self::Child,
        Self::Sibling,
        Self::Grandparent,
        Self::Grandchild,
    ];

    /// The UPPER_SNAKE name used in policy files and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spouse => "SPOUSE",
            Self::Parent => "PARENT",
            Self::Child => "CHILD",
            Self::Sibling => "SIBLING",
            Self::Grandparent => "GRANDPARENT",
            Self::Grandchild => "GRANDCHILD",
        }
    }
}

impl FromStr for Relationship {
    type Err = UnknownRelationship;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRelationship(s.to_owned()))
    }
}

impl fmt::Display for Relationship {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Relationship::ALL {
            assert_eq!(r.as_str().parse::<Relationship>(), Ok(r));
        }
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert!("COUSIN".parse::<Relationship>().is_err());
        assert!("child".parse::<Relationship>().is_err());
    }
}
