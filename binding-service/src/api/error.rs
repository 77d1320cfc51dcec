//! `AppError` to AIP-193 status: the one place a use case's failure becomes a gRPC answer.
//! Every reason here is listed in the proto comment of the RPCs that can return it.

use std::future::Future;

use gongji_shared::{
    command::SavedResponse,
    rpc::{ApiError, CommandHost, Violation},
};
use tonic::Status;

use super::status;
use crate::store::{Conflict, Database};
use crate::{
    app::{App, AppError, Infra, PeerError},
    domain::{lifecycle::ChangeRefusal, rules::Failure},
};

/// The use cases as the idempotent-command runner's host.
impl<S: Database<Conflict = Conflict>, P: Sync> CommandHost for App<S, P> {
    type Error = AppError;

    fn saved_response(
        &self,
        scope: &str,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<SavedResponse>, AppError>> + Send {
        App::saved_response(self, scope, request_id)
    }

    fn lost_race(error: &AppError) -> bool {
        matches!(error, AppError::RequestIdTaken)
    }

    fn failure(error: AppError) -> Status {
        app_status(error)
    }

    fn refusal(error: ApiError) -> Status {
        status(error)
    }
}

/// The status of a use case's failure.
pub(super) fn app_status(error: AppError) -> Status {
    status(match error {
        AppError::BindingRefused { failures } => refusal(&failures),
        AppError::BindingNotFound { binding_id } => {
            ApiError::not_found("BINDING_NOT_FOUND", "no binding with this ID")
                .with_metadata("binding_id", binding_id)
        }
        AppError::ChangeRefused {
            refusal,
            binding_id,
            state,
        } => {
            let error = match refusal {
                ChangeRefusal::NotAParty => ApiError::permission_denied(
                    "ACTING_PERSON_NOT_PARTY",
                    "only the binding's authorizer or beneficiary may revoke it",
                ),
                ChangeRefusal::NotActive => ApiError::failed_precondition(
                    "BINDING_NOT_ACTIVE",
                    "the binding has already ended",
                ),
                ChangeRefusal::NotPending => ApiError::failed_precondition(
                    "BINDING_NOT_PENDING",
                    "only a PENDING_REVIEW binding can be reviewed",
                ),
                ChangeRefusal::NotTheAuthorizer => ApiError::permission_denied(
                    "ACTING_PERSON_NOT_PARTY",
                    "only the binding's authorizer sets its limits",
                ),
                ChangeRefusal::NotFundsSharing => ApiError::failed_precondition(
                    "BINDING_NOT_FUNDS_SHARING",
                    "limits are set on a funds-sharing binding",
                ),
                ChangeRefusal::AbovePolicyMaximum { period, maximum } => {
                    ApiError::failed_precondition(
                        "LIMIT_ABOVE_POLICY_MAXIMUM",
                        "a limit is above the largest the policy allows for its period",
                    )
                    .with_metadata("period", period.as_str())
                    .with_metadata("maximum", maximum)
                }
                ChangeRefusal::NotTheBeneficiary => ApiError::permission_denied(
                    "NOT_THE_BENEFICIARY",
                    "only the beneficiary accepts or declines a binding request",
                ),
                ChangeRefusal::NotPendingConsent => ApiError::failed_precondition(
                    "BINDING_NOT_PENDING_CONSENT",
                    "only a binding waiting for the beneficiary's consent can be accepted or declined",
                ),
                ChangeRefusal::ConsentExpired { expire_time } => ApiError::failed_precondition(
                    "CONSENT_EXPIRED",
                    "the request waited past its time; ask the authorizer to apply again",
                )
                .with_metadata("consent_expire_time", expire_time.to_rfc3339()),
            };
            error
                .with_metadata("binding_id", binding_id)
                .with_metadata("state", state.as_str())
        }
        AppError::BindingChanged => ApiError::aborted(
            "CONCURRENT_UPDATE",
            "the binding changed meanwhile; read it again and retry",
        ),
        AppError::UseRecorded { movement_id } => ApiError::already_exists(
            "USE_ALREADY_RECORDED",
            "this movement has a use recorded under another request_id",
        )
        .with_metadata("movement_id", movement_id),
        AppError::RegistryChanged => ApiError::aborted(
            "CONCURRENT_UPDATE",
            "a party's registry record changed while the application was decided; retry",
        ),
        AppError::PersonNotFound { id } => {
            ApiError::not_found("PERSON_NOT_FOUND", "no registry record for this ID number")
                .with_metadata("id_number", id.masked())
        }
        // Only reaches here when no first answer could be replayed after the race.
        AppError::RequestIdTaken => {
            ApiError::aborted("CONCURRENT_UPDATE", "retry with the same request_id")
        }
        AppError::Infra(Infra::Peer(error)) if !matches!(error, PeerError::Unavailable(_)) => {
            tracing::error!(%error, "payment-service answered with a fault; nothing stored");
            ApiError::internal()
        }
        AppError::Infra(Infra::Peer(error)) => {
            tracing::warn!(%error, "payment-service did not say the balance; nothing stored");
            ApiError::unavailable(
                "DEPENDENCY_UNAVAILABLE",
                "payment-service could not be asked for the balance; retry later",
            )
            .with_metadata("dependency", "payment-service")
        }
        AppError::Infra(Infra::Store(error)) if error.is_outage() => {
            tracing::error!(%error, "the database is unreachable; nothing changed");
            ApiError::unavailable(
                "DATABASE_UNAVAILABLE",
                "the database could not be reached; nothing changed, retry later",
            )
        }
        AppError::Infra(Infra::Store(error)) => {
            tracing::error!(%error, "store failure");
            ApiError::internal()
        }
    })
}

/// The error for a refused application: the first failure is the reason, every failure a
/// violation. A duplicate is ALREADY_EXISTS, every other rule FAILED_PRECONDITION.
pub(super) fn refusal(failures: &[Failure]) -> ApiError {
    let Some(first) = failures.first() else {
        return ApiError::internal();
    };
    let message = format!("the binding was refused: {}", first.description());
    let mut error = if failures.contains(&Failure::BindingAlreadyExists) {
        ApiError::already_exists(Failure::BindingAlreadyExists.reason(), message)
    } else {
        ApiError::failed_precondition(first.reason(), message)
    };
    error = error.with_metadata(
        "failed_rules",
        failures
            .iter()
            .map(|f| f.reason())
            .collect::<Vec<_>>()
            .join(","),
    );
    for f in failures {
        error = error.with_violation(Violation {
            kind: f.reason().to_owned(),
            subject: f.subject().to_owned(),
            description: f.description().to_owned(),
        });
    }
    error
}
