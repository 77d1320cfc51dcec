//! gRPC handlers: each parses the wire into domain types, calls one use case of `app`, and
//! maps the result back. State-changing RPCs go through `gongji_shared::rpc::command`, the
//! idempotent-command runner, with `App` as its host; use-case failures become statuses in
//! `error::app_status` alone.

mod binding;
mod convert;
mod error;
mod registry;
mod watch;

use gongji_shared::rpc::ApiError;
use tonic::Status;

use crate::{ERROR_DOMAIN, app::AppError};

pub use binding::BindingApi;
pub use registry::RegistryApi;

/// A wire error under this service's domain.
fn status(error: ApiError) -> Status {
    error.into_status(ERROR_DOMAIN)
}

/// A use case's failure.
fn failure(error: AppError) -> Status {
    error::app_status(error)
}
