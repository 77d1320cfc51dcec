//! A person's name as on their ID card.

use std::fmt;

/// Longest name accepted, in characters (long minority-language names fit).
pub const MAX_NAME_CHARS: usize = 64;

/// A trimmed name as on an ID card: letters of any script, with the spaces, dots and
/// hyphens some names carry; at least one letter; no control or invisible format
/// characters (which could reverse or hide what an operator reads). `Display` masks all
/// but the first character (`张**`).
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
    #[error("a name must not contain invisible format characters")]
    FormatCharacter,
    #[error("a name has at least one letter")]
    NoLetter,
    #[error("a name has only letters, spaces, dots, hyphens and apostrophes")]
    Symbol,
}

/// The punctuation names carry besides letters and spaces (e.g. 阿依古丽·买买提).
const NAME_PUNCTUATION: [char; 7] = ['·', '•', '‧', '・', '.', '-', '\''];

/// Unicode format characters (category Cf): invisible, and able to reorder text.
fn is_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Combining marks that letters of some scripts carry.
fn is_combining_mark(c: char) -> bool {
    matches!(
        u32::from(c),
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F
    )
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
        if trimmed.chars().any(is_format) {
            return Err(PersonNameError::FormatCharacter);
        }
        if !trimmed.chars().any(char::is_alphabetic) {
            return Err(PersonNameError::NoLetter);
        }
        let allowed = |c: char| {
            c.is_alphabetic() || c == ' ' || NAME_PUNCTUATION.contains(&c) || is_combining_mark(c)
        };
        if !trimmed.chars().all(allowed) {
            return Err(PersonNameError::Symbol);
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
    fn invisible_and_reordering_characters_are_rejected() {
        for name in [
            "\u{202E}\u{200B}",
            "张\u{202E}三",
            "\u{200B}李四",
            "王\u{FEFF}",
        ] {
            assert_eq!(
                PersonName::parse(name),
                Err(PersonNameError::FormatCharacter),
                "{name:?}"
            );
        }
    }

    #[test]
    fn a_name_has_a_letter_and_no_symbols() {
        assert_eq!(PersonName::parse("🙂🙂"), Err(PersonNameError::NoLetter));
        assert_eq!(PersonName::parse("·-"), Err(PersonNameError::NoLetter));
        assert_eq!(PersonName::parse("张🙂"), Err(PersonNameError::Symbol));
        assert_eq!(PersonName::parse("李4"), Err(PersonNameError::Symbol));
        for name in [
            "阿依古丽·买买提",
            "José María",
            "O'Brien-Smith",
            "Nguyễn Văn",
        ] {
            assert!(PersonName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn display_keeps_only_the_first_character() {
        let name = PersonName::parse("欧阳小明").unwrap();
        assert_eq!(name.to_string(), "欧***");
        assert_eq!(format!("{name:?}"), "PersonName(欧***)");
    }
}
