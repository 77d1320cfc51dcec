//! The one error every use case of payment-service returns.
//!
//! Business refusals are variants carrying the data a client needs to act; infrastructure
//! failures (the database, binding-service) sit apart in [`Infra`]. `api::error` turns an
//! `AppError` into an AIP-193 status, in one function.

use chrono::NaiveDate;
use gongji_shared::{CoverageYear, IdNumber, Money, RegionCode};

use super::PeerError;
use crate::{
    domain::{
        authorization::Denial, institution::NotDesignated, premium::PremiumRefusal,
        wallet::WalletRefusal,
    },
    store::{Conflict, StoreError},
};

/// Whose account a use case looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRole {
    /// The holder named by an account call.
    Holder,
    /// The payer of a premium.
    Payer,
    /// The family account named for a medical expense.
    FamilyAccount,
}

/// Which kind of payment was looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentKind {
    Premium,
    MedicalExpense,
}

/// Why a use case gave no result.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    // Accounts.
    #[error("the holder is not in the registry")]
    HolderNotInRegistry { holder: IdNumber },
    #[error("the holder has no employee insurance")]
    HolderNotEmployeeInsured { holder: IdNumber },
    #[error("the region differs from the holder's employee-insurance region")]
    RegionMismatch {
        region: RegionCode,
        registry_region: RegionCode,
    },
    #[error("the holder already has an account")]
    AccountExists { holder: IdNumber },
    #[error("no account")]
    AccountNotFound { holder: IdNumber, role: AccountRole },
    #[error("the year has not ended")]
    YearNotEnded { year: i32, today: NaiveDate },
    /// A statement of a year that has not begun.
    #[error("the year has not begun")]
    YearNotStarted { year: i32, today: NaiveDate },
    /// The account did not exist in that year: it had no balance to close.
    #[error("the year is before the account was opened")]
    YearBeforeAccount { year: i32, opened: i32 },

    // Premiums and medical expenses.
    /// M1: the institution is not designated, as that kind, on the day.
    #[error("the institution is not designated")]
    InstitutionNotDesignated {
        code: String,
        why: NotDesignated,
        business_date: NaiveDate,
    },
    #[error("the beneficiary is not in the registry")]
    BeneficiaryNotFound { beneficiary: IdNumber },
    #[error("the beneficiary has employee insurance")]
    BeneficiaryHasEmployeeInsurance { beneficiary: IdNumber },
    #[error("the beneficiary has no insurance region")]
    BeneficiaryNotInsured,
    #[error("the premium of the year is paid")]
    PremiumAlreadyPaid { year: CoverageYear },
    #[error("the premium cannot be paid now: {refusal:?}")]
    PremiumRefused {
        refusal: PremiumRefusal,
        year: CoverageYear,
    },
    #[error("binding-service does not authorize the payment")]
    NotAuthorized { denials: Vec<Denial> },
    #[error("the expected amount differs from the premium")]
    AmountMismatch { expected: Money, premium: Money },
    #[error("the usable balance is short")]
    InsufficientBalance {
        shortfall: Money,
        usable: Money,
        premium: Money,
    },
    #[error("other means declared although the account covers everything")]
    OtherMeansNotNeeded,
    #[error("other means declared with the wrong amount")]
    OtherMeansWrongAmount { expected: Money },
    #[error("a balance changed while paying")]
    BalanceChanged,
    /// binding-service's answer for the debit differs from the one the payment was
    /// computed with (the beneficiary's region changed meanwhile).
    #[error("the authorization changed while paying")]
    AuthorizationChanged,
    /// The authorizer's limits leave less than the account part of a premium, and other means
    /// do not cover the rest.
    #[error("the authorizer's limit is reached")]
    FamilyLimitReached { remaining: Money, shortfall: Money },
    /// A concurrent debit of the same binding used what the limits left between the read and
    /// the hold: read again.
    #[error("a concurrent debit used the authorizer's limit")]
    FamilyLimitRaced,
    /// The hold expired (or was voided) before the debit could be written: nothing moved.
    #[error("the authorization expired before the debit")]
    AuthorizationExpired,
    /// The write would take a balance past the largest one kept.
    #[error("a balance would pass the largest balance")]
    BalanceLimitReached,
    #[error("no such payment")]
    PaymentNotFound {
        payment_id: String,
        kind: PaymentKind,
    },
    #[error("the payment was refunded before")]
    AlreadyRefunded { payment_id: String },
    /// A refund asks more than the payment's earlier refunds left.
    #[error("the refund is more than is left to refund")]
    RefundExceedsPayment {
        payment_id: String,
        requested: Money,
        refundable: Money,
    },

    // The family wallet.
    /// The policy in force has no family wallet.
    #[error("the family wallet is not available")]
    WalletNotAvailable,
    /// A transfer outside the wallet's hours or figures.
    #[error("the wallet refuses the transfer: {refusal:?}")]
    WalletRefused {
        refusal: WalletRefusal,
        rule: gongji_shared::policy::WalletRule,
    },
    #[error("no such wallet transfer")]
    TransferNotFound { transfer_id: String },
    /// Only a pending transfer is confirmed or returned.
    #[error("the wallet transfer is settled already")]
    TransferNotPending {
        transfer_id: String,
        state: crate::domain::wallet::TransferState,
    },

    /// A day of the month is not settled: the month's statement waits.
    #[error("the month is not settled")]
    MonthNotSettled { month: NaiveDate, day: NaiveDate },
    #[error("no statement of the month")]
    StatementNotFound { month: NaiveDate },

    // Settlement.
    #[error("the business day has not ended")]
    BusinessDayNotClosed { date: NaiveDate, today: NaiveDate },
    #[error("the business day is not settled")]
    SettlementNotFound { date: NaiveDate },

    // Reconciliation.
    #[error("neither binding-service nor the ledger knows the binding")]
    BindingNotFound { binding_id: String },
    #[error("the binding has more uses than one reconciliation compares")]
    TooManyUses { limit: usize },

    /// A concurrent call with the same request ID stored its answer first.
    #[error("request id taken by a concurrent call")]
    RequestIdTaken,

    #[error(transparent)]
    Infra(#[from] Infra),
}

/// A failure of what the use cases rely on, the database or binding-service: nothing
/// changed.
pub type Infra = gongji_shared::command::Infra<StoreError, PeerError>;

impl From<StoreError> for AppError {
    /// A conflict no use case expected is a fault of ours, like any store failure.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(Conflict::RequestIdTaken) => Self::RequestIdTaken,
            StoreError::Conflict(Conflict::BalanceLimit) => Self::BalanceLimitReached,
            other => Infra::Store(other).into(),
        }
    }
}

impl From<PeerError> for AppError {
    fn from(error: PeerError) -> Self {
        Infra::Peer(error).into()
    }
}
