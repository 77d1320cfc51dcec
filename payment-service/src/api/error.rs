//! `AppError` to AIP-193 status: the one place a use case's failure becomes a gRPC answer.
//! Every reason here is listed in the proto comment of the RPCs that can return it.

use std::future::Future;

use gongji_shared::{
    command::SavedResponse,
    rpc::{ApiError, CommandHost, Violation},
};
use tonic::Status;

use super::status;
use crate::app::{AccountRole, App, AppError, Infra, PaymentKind, PeerError};
use crate::domain::{institution::NotDesignated, premium::PremiumRefusal, wallet::WalletRefusal};
use crate::store::{Conflict, Database};

/// The use cases as the idempotent-command runner's host.
impl<S: Database<Conflict = Conflict>, R: Sync> CommandHost for App<S, R> {
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
    status(app_error(error))
}

/// The wire error of a use case's failure.
pub(super) fn app_error(error: AppError) -> ApiError {
    match error {
        AppError::HolderNotInRegistry { holder } => {
            ApiError::failed_precondition("PERSON_NOT_FOUND", "the holder is not in the registry")
                .with_metadata("holder_id_number", holder.masked())
        }
        AppError::HolderNotEmployeeInsured { holder } => ApiError::failed_precondition(
            "HOLDER_NOT_EMPLOYEE_INSURED",
            "only a person with employee insurance has a personal account",
        )
        .with_metadata("holder_id_number", holder.masked()),
        AppError::RegionMismatch {
            region,
            registry_region,
        } => ApiError::failed_precondition(
            "REGION_MISMATCH",
            "region_code differs from the holder's employee-insurance region",
        )
        .with_metadata("region_code", region)
        .with_metadata("registry_region_code", registry_region),
        AppError::AccountExists { holder } => ApiError::already_exists(
            "ACCOUNT_ALREADY_EXISTS",
            "this holder already has a personal account",
        )
        .with_metadata("holder_id_number", holder.masked()),
        AppError::AccountNotFound { holder, role } => {
            let (field, message) = match role {
                AccountRole::Holder => ("holder_id_number", "no personal account for this holder"),
                AccountRole::Payer => ("payer_id_number", "the payer has no personal account"),
                AccountRole::FamilyAccount => (
                    "family_account_holder_id_number",
                    "the named family account does not exist",
                ),
            };
            ApiError::not_found("ACCOUNT_NOT_FOUND", message).with_metadata(field, holder.masked())
        }
        AppError::YearNotEnded { year, today } => {
            ApiError::failed_precondition("YEAR_NOT_ENDED", "a year is closed once it has ended")
                .with_metadata("year", year)
                .with_metadata("today", today)
        }
        AppError::YearNotStarted { year, today } => ApiError::failed_precondition(
            "YEAR_NOT_STARTED",
            "a year has a statement once it has begun",
        )
        .with_metadata("year", year)
        .with_metadata("today", today),
        AppError::YearBeforeAccount { year, opened } => ApiError::failed_precondition(
            "YEAR_BEFORE_ACCOUNT",
            "the account did not exist in that year",
        )
        .with_metadata("year", year)
        .with_metadata("account_opened_year", opened),
        AppError::BeneficiaryNotFound { beneficiary } => {
            ApiError::not_found("PERSON_NOT_FOUND", "the beneficiary is not in the registry")
                .with_metadata("beneficiary_id_number", beneficiary.masked())
        }
        AppError::BeneficiaryHasEmployeeInsurance { beneficiary } => ApiError::failed_precondition(
            "BENEFICIARY_HAS_EMPLOYEE_INSURANCE",
            "the beneficiary has employee insurance and owes no resident premium",
        )
        .with_metadata("beneficiary_id_number", beneficiary.masked()),
        AppError::BeneficiaryNotInsured => ApiError::failed_precondition(
            "BENEFICIARY_NOT_INSURED",
            "the beneficiary has no insurance region in the registry",
        ),
        AppError::PremiumAlreadyPaid { year } => ApiError::already_exists(
            "PREMIUM_ALREADY_PAID",
            "the beneficiary's premium for this year is already paid",
        )
        .with_metadata("coverage_year", year),
        AppError::PremiumRefused { refusal, year } => {
            premium_refusal(refusal).with_metadata("coverage_year", year)
        }
        AppError::NotAuthorized { denials } => {
            let mut error = ApiError::failed_precondition(
                "NOT_AUTHORIZED",
                "binding-service does not authorize this account to pay for this beneficiary",
            )
            .with_metadata(
                "denials",
                denials
                    .iter()
                    .map(|d| d.reason.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            for d in denials {
                error = error.with_violation(Violation {
                    kind: d.reason,
                    subject: "authorization".to_owned(),
                    description: d.message,
                });
            }
            error
        }
        AppError::AmountMismatch { expected, premium } => ApiError::failed_precondition(
            "AMOUNT_MISMATCH",
            "expected_amount differs from the premium",
        )
        .with_metadata("expected_amount", expected)
        .with_metadata("premium", premium),
        AppError::InsufficientBalance {
            shortfall,
            usable,
            premium,
        } => ApiError::failed_precondition(
            "INSUFFICIENT_BALANCE",
            "the usable balance is short; pay the shortfall by other means in the same request",
        )
        .with_metadata("shortfall", shortfall)
        .with_metadata("usable_balance", usable)
        .with_metadata("premium", premium),
        AppError::OtherMeansNotNeeded => ApiError::invalid_argument(
            "INVALID_OTHER_MEANS",
            "other_means",
            "the account covers the whole premium; other_means must be absent",
        ),
        AppError::OtherMeansWrongAmount { expected } => ApiError::invalid_argument(
            "INVALID_OTHER_MEANS",
            "other_means.amount",
            "other_means.amount must equal the premium less the account part",
        )
        .with_metadata("expected_other_means_amount", expected),
        AppError::FamilyLimitReached {
            remaining,
            shortfall,
        } => ApiError::failed_precondition(
            "FAMILY_LIMIT_REACHED",
            "the authorizer's limit on this binding leaves less than the account part; pay the rest by other means",
        )
        .with_metadata("remaining", remaining)
        .with_metadata("shortfall", shortfall),
        AppError::FamilyLimitRaced => ApiError::aborted(
            "CONCURRENT_UPDATE",
            "another payment used the authorizer's limit meanwhile; retry with the same request_id",
        ),
        AppError::BalanceChanged => ApiError::aborted(
            "CONCURRENT_UPDATE",
            "a balance changed while paying; quote again and retry",
        ),
        AppError::AuthorizationChanged => ApiError::aborted(
            "CONCURRENT_UPDATE",
            "the beneficiary's registry record, or the binding's limits, changed while paying; quote again and retry",
        ),
        AppError::AuthorizationExpired => ApiError::aborted(
            "AUTHORIZATION_EXPIRED",
            "the authorization's hold ran out before the debit was written; nothing moved; retry",
        ),
        AppError::BindingNotFound { binding_id } => {
            ApiError::not_found("BINDING_NOT_FOUND", "no binding with this ID")
                .with_metadata("binding_id", binding_id)
        }
        AppError::TooManyUses { limit } => ApiError::failed_precondition(
            "TOO_MANY_USES",
            "the binding has more uses than one reconciliation compares",
        )
        .with_metadata("limit", limit),
        AppError::BalanceLimitReached => ApiError::failed_precondition(
            "BALANCE_LIMIT_REACHED",
            "the balance would pass the largest balance an account keeps",
        )
        .with_metadata(
            "max_balance",
            gongji_shared::domain::money::format_signed_fen(
                gongji_shared::domain::money::MAX_BALANCE_FEN,
            ),
        ),
        AppError::PaymentNotFound { payment_id, kind } => {
            let message = match kind {
                PaymentKind::Premium => "no premium payment with this ID",
                PaymentKind::MedicalExpense => "no medical-expense payment with this ID",
            };
            ApiError::not_found("PAYMENT_NOT_FOUND", message)
                .with_metadata("payment_id", payment_id)
        }
        AppError::AlreadyRefunded { payment_id } => {
            ApiError::failed_precondition("ALREADY_REFUNDED", "this payment was refunded before")
                .with_metadata("payment_id", payment_id)
        }
        AppError::InstitutionNotDesignated {
            code,
            why,
            business_date,
        } => {
            let (detail, cause) = match why {
                NotDesignated::Unknown => (
                    "the institution is not in the registry of designated institutions",
                    "UNKNOWN",
                ),
                NotDesignated::OtherKind { .. } => (
                    "the institution is designated as the other kind",
                    "OTHER_KIND",
                ),
                NotDesignated::NotOnDay => (
                    "the institution is not designated on this day",
                    "NOT_ON_DAY",
                ),
            };
            let error = ApiError::failed_precondition("INSTITUTION_NOT_DESIGNATED", detail)
                .with_metadata("institution_code", code)
                .with_metadata("cause", cause)
                .with_metadata("business_date", business_date);
            match why {
                NotDesignated::OtherKind { designated } => {
                    error.with_metadata("designated_kind", designated.as_str())
                }
                _ => error,
            }
        }
        AppError::WalletNotAvailable => ApiError::failed_precondition(
            "WALLET_NOT_AVAILABLE",
            "the policy in force has no cross-province family wallet",
        ),
        AppError::WalletRefused { refusal, rule } => match refusal {
            WalletRefusal::Closed => ApiError::failed_precondition(
                "WALLET_CLOSED",
                "family wallet transfers are taken only within the allowed hours (Asia/Shanghai)",
            )
            .with_metadata("open_from", rule.open_from.format("%H:%M"))
            .with_metadata("open_until", rule.open_until.format("%H:%M")),
            WalletRefusal::OverPerTransfer => ApiError::failed_precondition(
                "WALLET_TRANSFER_LIMIT_EXCEEDED",
                "one transfer moves at most the policy's amount",
            )
            .with_metadata("max_per_transfer", rule.max_per_transfer),
            WalletRefusal::DailyCountReached => ApiError::failed_precondition(
                "WALLET_DAILY_LIMIT_REACHED",
                "the day's family wallet transfers are used up; try again tomorrow",
            )
            .with_metadata("max_transfers_per_day", rule.max_transfers_per_day),
        },
        AppError::MonthNotSettled { month, day } => ApiError::failed_precondition(
            "MONTH_NOT_SETTLED",
            "a month is stated once every day of it is settled (SettleBusinessDay)",
        )
        .with_metadata("month", month.format("%Y-%m"))
        .with_metadata("first_unsettled_date", day),
        AppError::StatementNotFound { month } => {
            ApiError::not_found("STATEMENT_NOT_FOUND", "the month has no statement yet")
                .with_metadata("month", month.format("%Y-%m"))
        }
        AppError::TransferNotPending { transfer_id, state } => ApiError::failed_precondition(
            "TRANSFER_NOT_PENDING",
            "only a transfer waiting for confirmation is confirmed or returned",
        )
        .with_metadata("transfer_id", transfer_id)
        .with_metadata("state", state.as_str()),
        AppError::TransferNotFound { transfer_id } => {
            ApiError::not_found("TRANSFER_NOT_FOUND", "no wallet transfer with this ID")
                .with_metadata("transfer_id", transfer_id)
        }
        AppError::RefundExceedsPayment {
            payment_id,
            requested,
            refundable,
        } => ApiError::failed_precondition(
            "REFUND_EXCEEDS_PAYMENT",
            "the payment's refunds together never return more than it paid",
        )
        .with_metadata("payment_id", payment_id)
        .with_metadata("requested", requested)
        .with_metadata("refundable", refundable),
        AppError::BusinessDayNotClosed { date, today } => ApiError::failed_precondition(
            "BUSINESS_DAY_NOT_CLOSED",
            "a business day is settled after it ends (Asia/Shanghai midnight)",
        )
        .with_metadata("business_date", date)
        .with_metadata("today", today),
        AppError::SettlementNotFound { date } => {
            ApiError::not_found("SETTLEMENT_NOT_FOUND", "this business day is not settled")
                .with_metadata("business_date", date)
        }
        // Only reaches here when no first answer could be replayed after the race.
        AppError::RequestIdTaken => {
            ApiError::aborted("CONCURRENT_UPDATE", "retry with the same request_id")
        }
        AppError::Infra(Infra::Peer(error @ PeerError::Unavailable(_))) => {
            dependency_unavailable(&error)
        }
        AppError::Infra(Infra::Peer(error)) => {
            tracing::error!(%error, "binding-service answered with a fault; nothing changed");
            ApiError::internal()
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
    }
}

fn premium_refusal(refusal: PremiumRefusal) -> ApiError {
    match refusal {
        PremiumRefusal::CoverageYearNotOpen => ApiError::failed_precondition(
            "COVERAGE_YEAR_NOT_OPEN",
            "the policy has no premium for this year or its collection window has not opened",
        ),
        PremiumRefusal::NoBenefitInCoverageYear { would_start } => {
            let error = ApiError::failed_precondition(
                "NO_BENEFIT_IN_COVERAGE_YEAR",
                "paying now would bring no cover within the coverage year; a back-payment must say so",
            );
            match would_start {
                Some(start) => error.with_metadata("benefit_start_date", start),
                None => error,
            }
        }
        PremiumRefusal::BackPaymentNotPast => ApiError::invalid_argument(
            "INVALID_BACK_PAYMENT",
            "back_payment",
            "a back-payment is only for a coverage year before the current one",
        ),
        PremiumRefusal::RegionOutsidePolicy => ApiError::failed_precondition(
            "REGION_OUTSIDE_POLICY",
            "the beneficiary is insured outside the province this policy covers; none of its figures apply",
        ),
        PremiumRefusal::BackPaymentBeforeBirth { birth_year } => ApiError::failed_precondition(
            "BACK_PAYMENT_BEFORE_BIRTH",
            "a back-payment is never for a year before the beneficiary's birth year",
        )
        .with_metadata("birth_year", birth_year),
        PremiumRefusal::BackPaymentBeforePolicy { first_year } => {
            let error = ApiError::failed_precondition(
                "BACK_PAYMENT_BEFORE_POLICY",
                "a back-payment is never for a year before the first coverage year the policy knows",
            );
            match first_year {
                Some(first) => error.with_metadata("first_coverage_year", first),
                None => error,
            }
        }
        PremiumRefusal::BackPaymentTooOld { max_years_back } => ApiError::failed_precondition(
            "BACK_PAYMENT_TOO_OLD",
            "a back-payment reaches back no further than the policy allows",
        )
        .with_metadata("max_years_back", max_years_back),
    }
}

/// binding-service could not answer: nothing moved (fail closed).
fn dependency_unavailable(error: &PeerError) -> ApiError {
    tracing::warn!(%error, "binding-service did not answer; nothing changes");
    ApiError::unavailable(
        "DEPENDENCY_UNAVAILABLE",
        "binding-service could not be asked; nothing changed, retry later",
    )
    .with_metadata("dependency", "binding-service")
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn a_peer_outage_is_unavailable_and_a_peer_fault_internal() {
        let outage = app_status(AppError::Infra(Infra::Peer(PeerError::Unavailable(
            "Unavailable: down".into(),
        ))));
        assert_eq!(outage.code(), Code::Unavailable);
        for fault in [
            PeerError::Failed("InvalidArgument: bad".into()),
            PeerError::Malformed("no region".into()),
        ] {
            let status = app_status(AppError::Infra(Infra::Peer(fault)));
            assert_eq!(status.code(), Code::Internal);
        }
    }
}
