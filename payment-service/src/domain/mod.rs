//! Payment rules (DOMAIN.md P1 to P9, M1, M2, S1, S2): pure functions and values, no I/O,
//! no tonic, no SQL.

pub mod authorization;
pub mod fence;
pub mod institution;
pub mod ledger;
pub mod medical;
pub mod medical_refund;
pub mod payment;
pub mod premium;
pub mod settlement;
pub mod split;
pub mod statement;
pub mod usage;
pub mod wallet;
pub mod wallet_statement;

pub use ledger::*;
