//! Domain types both services use: rules and values, no I/O, no tonic, no SQL.
//!
//! Each type has a `parse` constructor that refuses what the domain does not allow, so a
//! value of the type is valid wherever it travels.

pub mod clock;
pub mod coverage_year;
pub mod id_number;
pub mod limits;
pub mod money;
pub mod person_name;
pub mod policy;
pub mod region;
pub mod relationship;
pub mod request_id;

pub use clock::Clock;
pub use coverage_year::CoverageYear;
pub use id_number::IdNumber;
pub use money::Money;
pub use person_name::PersonName;
pub use policy::Policy;
pub use region::RegionCode;
pub use relationship::Relationship;
pub use request_id::RequestId;
