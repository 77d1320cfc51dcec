//! A person's name as on their ID card.

use std::fmt;

/// Longest name accepted, in characters (long minority-language names fit).
pub const MAX_NAME_CHARS: usize = 64;

/// A trimmed, non-empty name without control characters. `Display` masks all but the
/// first character (`张**`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PersonName(String);

/// Why a string is not a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PersonNameError {
    #[error("a name must not be empty")]
    Empty,
    #[error("a name has at most {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("a name must not contain control characters")]
    ControlCharacter,
}

impl PersonName {
    /// Trims surrounding white space and validates.
    pub fn parse(input: &str) -> Result<Self, PersonNameError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PersonNameError::Empty);
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(PersonNameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(PersonNameError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The full name. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The masked form: first character, then one `*` per further character.
    pub fn masked(&self) -> String {
        let mut chars = self.0.chars();
        let first = chars.next().unwrap_or('*');
        std::iter::once(first).chain(chars.map(|_| '*')).collect()
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonName({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed() {
        assert_eq!(PersonName::parse("  张三 ").unwrap().as_str(), "张三");
    }

    #[test]
    fn empty_and_blank_names_are_rejected() {
        assert_eq!(PersonName::parse(""), Err(PersonNameError::Empty));
        assert_eq!(PersonName::parse(" \t "), Err(PersonNameError::Empty));
    }

    #[test]
    fn a_name_of_65_characters_is_rejected_and_64_accepted() {
        assert!(PersonName::parse(&"李".repeat(64)).is_ok());
        assert_eq!(
            PersonName::parse(&"李".repeat(65)),
            Err(PersonNameError::TooLong)
        );
    }

    #[test]
    fn control_characters_are_rejected() {
        assert_eq!(
            PersonName::parse("张\u{0}三"),
            Err(PersonNameError::ControlCharacter)
        );
    }

    #[test]
    fn display_keeps_only_the_first_character() {
        let name = PersonName::parse("欧阳小明").unwrap();
        assert_eq!(name.to_string(), "欧***");
        assert_eq!(format!("{name:?}"), "PersonName(欧***)");
    }
}
