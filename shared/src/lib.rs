//! Domain types and runtime plumbing shared by binding-service and payment-service.
//!
//! The domain types (`IdNumber`, `PersonName`, `RegionCode`, `Money`, `Relationship`,
//! `CoverageYear`, `Policy`, `Clock`) hold no I/O and no tonic types. The `rpc` module is
//! the gRPC plumbing both servers share: AIP-193 errors, limits, health, reflection,
//! graceful shutdown and telemetry.

pub mod clock;
pub mod coverage_year;
pub mod db;
pub mod flags;
pub mod id_number;
pub mod money;
pub mod person_name;
pub mod policy;
pub mod region;
pub mod relationship;
pub mod request_id;
pub mod rpc;

pub use clock::Clock;
pub use coverage_year::CoverageYear;
pub use id_number::IdNumber;
pub use money::Money;
pub use person_name::PersonName;
pub use policy::Policy;
pub use region::RegionCode;
pub use relationship::Relationship;
pub use request_id::RequestId;
