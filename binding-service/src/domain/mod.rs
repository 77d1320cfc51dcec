//! Binding rules (DOMAIN.md B1 to B8): pure functions over registry records, bindings and
//! the policy. No I/O, no tonic.

pub mod lifecycle;
pub mod model;
pub mod rules;

pub use model::*;
