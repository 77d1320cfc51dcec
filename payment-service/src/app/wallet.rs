//! The cross-province family wallet (U4): transfers into a relative's family wallet in
//! another province.

use gongji_shared::{IdNumber, Money, command::Command, policy::Purpose};

use super::{AccountRole, App, AppError, Registry, new_id};
use crate::{
    domain::{
        fence::Hold,
        split::split,
        wallet::{self, Settle, TransferState, WalletRefusal, WalletTransfer},
    },
    store::{Accounts, Conflict, Holds, StoreError, Wallets},
};

/// Most overdue transfers one batch returns, and batches per pass: a pass's work is bounded.
pub const RETURN_BATCH: u32 = 100;
pub const RETURN_BATCHES_PER_PASS: usize = 10;

/// A transfer to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferOrder {
    pub authorizer: IdNumber,
    pub beneficiary: IdNumber,
    pub amount: Money,
}

impl<S: Accounts + Holds + Wallets, R: Registry> App<S, R> {
    /// Transfers money from the authorizer's usable buckets into the beneficiary's family
    /// wallet: within the policy's hours and figures, the authorizer's limits, and
    /// binding-service's authorization for FAMILY_WALLET (P1's fence).
    pub async fn transfer_to_wallet(
        &self,
        order: TransferOrder,
        command: Command<WalletTransfer>,
    ) -> Result<WalletTransfer, AppError> {
        let TransferOrder {
            authorizer,
            beneficiary,
            amount,
        } = order;
        // One instant decides the hours, the day and the figures in force.
        let (now, today) = self.now();
        let rule = self
            .policy
            .rules_on(today)
            .and_then(|r| r.wallet)
            .ok_or(AppError::WalletNotAvailable)?;
        let refused = |refusal| AppError::WalletRefused { refusal, rule };
        let made = self.store.transfers_made_on(&authorizer, today).await?;
        let time = gongji_shared::domain::clock::shanghai_time(now);
        wallet::check(&rule, amount, time, made).map_err(refused)?;
        let account = self.existing(&authorizer, AccountRole::Payer).await?;
        let drawn = split(amount, Some(&account), &self.usable_buckets(today));
        if !drawn.other_part.is_zero() {
            return Err(AppError::InsufficientBalance {
                shortfall: drawn.other_part,
                usable: drawn.account_part,
                premium: amount,
            });
        }
        // No partial transfer: the authorizer's limits must leave all of it.
        let cap = self
            .limit_cap(&authorizer, &beneficiary, Purpose::FamilyWallet)
            .await?;
        if let Some(cap) = &cap
            && let Some(left) = self
                .store
                .limit_remaining(cap, Purpose::FamilyWallet, now)
                .await?
            && left < amount
        {
            return Err(AppError::FamilyLimitReached {
                remaining: left,
                shortfall: amount.checked_sub(left).unwrap_or(amount),
            });
        }
        let movement_id = new_id();
        let hold = Hold::new(
            &movement_id,
            &authorizer,
            &drawn.draws,
            Purpose::FamilyWallet,
            command.request_id(),
            now,
            self.hold_timeout_ms,
        )
        .within(cap);
        let authorization = match self.hold_and_authorize(&hold, &beneficiary).await {
            Err(AppError::FamilyLimitRaced) => return Err(AppError::BalanceChanged),
            other => other?,
        };
        let Some(destination) = authorization
            .beneficiary_region
            .as_ref()
            .and_then(wallet::province_of)
        else {
            self.release(&movement_id).await;
            return Err(AppError::BeneficiaryNotInsured);
        };
        let transfer = WalletTransfer {
            transfer_id: new_id(),
            request_id: command.request_id().to_owned(),
            movement_id: movement_id.clone(),
            authorizer,
            beneficiary,
            amount,
            draws: drawn.draws,
            destination,
            binding_id: authorization.binding_id.clone(),
            binding_version: authorization.binding_version,
            state: TransferState::Pending,
            create_time: now,
            business_date: today,
            confirm_deadline: now + chrono::Duration::hours(i64::from(rule.confirm_within_hours)),
        };
        let movement = wallet::transfer_movement(&transfer, &account);
        let posting = self.posting(&movement_id, &transfer.binding_id, transfer.binding_version);
        let written = self
            .store
            .insert_transfer(
                &transfer,
                &movement,
                &posting,
                rule.max_transfers_per_day,
                command.idempotency(),
                &command.response(&transfer),
            )
            .await;
        if let Err(e) = written {
            self.release(&movement_id).await;
            return Err(match e {
                StoreError::Conflict(Conflict::InsufficientBalance) => AppError::BalanceChanged,
                StoreError::Conflict(Conflict::HoldGone) => AppError::AuthorizationExpired,
                StoreError::Conflict(Conflict::WalletDailyCount) => {
                    refused(WalletRefusal::DailyCountReached)
                }
                e => e.into(),
            });
        }
        self.count_family_debit(Purpose::FamilyWallet, transfer.amount);
        tracing::info!(
            transfer_id = %transfer.transfer_id,
            authorizer = %transfer.authorizer,
            beneficiary = %transfer.beneficiary,
            amount = %transfer.amount,
            destination = %transfer.destination,
            "family wallet transfer sent"
        );
        Ok(transfer)
    }

    /// Confirms (the receiving province received it) or returns a pending transfer: the
    /// operator's command, since the receiving province's system is outside this project.
    pub async fn settle_wallet_transfer(
        &self,
        transfer_id: &str,
        settle: Settle,
        command: Command<WalletTransfer>,
    ) -> Result<WalletTransfer, AppError> {
        let current = self.wallet_transfer(transfer_id).await?;
        let (now, today) = self.now();
        let movement_id = new_id();
        let request_id = command.request_id().to_owned();
        let plan = |t: &WalletTransfer, a: &crate::domain::Account, closed: bool| {
            wallet::return_movement(t, a, closed, &movement_id, &request_id, now, today)
        };
        let answer = |t: &WalletTransfer| command.response(t);
        let settled = self
            .store
            .settle_transfer(
                transfer_id,
                settle,
                now,
                plan,
                command.idempotency(),
                Some(answer),
            )
            .await?;
        let Some(settled) = settled else {
            return Err(AppError::TransferNotPending {
                transfer_id: transfer_id.to_owned(),
                state: self
                    .wallet_transfer(transfer_id)
                    .await
                    .map_or(current.state, |t| t.state),
            });
        };
        tracing::info!(
            transfer_id,
            state = settled.state.as_str(),
            "family wallet transfer settled by an operator"
        );
        Ok(settled)
    }

    /// Returns the pending transfers whose confirmation time ran out, as new movements, in
    /// bounded batches (the system's change). Answers how many.
    pub async fn return_overdue_transfers(&self) -> Result<usize, AppError> {
        let (now, today) = self.now();
        let mut returned = 0;
        for _ in 0..RETURN_BATCHES_PER_PASS {
            let due = self.store.transfers_due(now, RETURN_BATCH).await?;
            for t in &due {
                let movement_id = new_id();
                let request_id = format!("return-unconfirmed:{}", t.transfer_id);
                let by = gongji_shared::command::Idempotency {
                    scope: "system".to_owned(),
                    acting_person: None,
                    request_id: request_id.clone(),
                    operation: "ReturnUnconfirmedTransfer",
                    fingerprint: String::new(),
                };
                let plan = |t: &WalletTransfer, a: &crate::domain::Account, closed: bool| {
                    wallet::return_movement(t, a, closed, &movement_id, &request_id, now, today)
                };
                let settled = self
                    .store
                    .settle_transfer(
                        &t.transfer_id,
                        Settle::Return,
                        now,
                        plan,
                        &by,
                        None::<fn(&WalletTransfer) -> Vec<u8>>,
                    )
                    .await?;
                returned += usize::from(settled.is_some());
            }
            if due.len() < RETURN_BATCH as usize {
                break;
            }
        }
        if returned > 0 {
            tracing::info!(returned, "unconfirmed family wallet transfers returned");
        }
        Ok(returned)
    }

    /// One wallet transfer.
    pub async fn wallet_transfer(&self, transfer_id: &str) -> Result<WalletTransfer, AppError> {
        self.store
            .wallet_transfer(transfer_id)
            .await?
            .ok_or_else(|| AppError::TransferNotFound {
                transfer_id: transfer_id.to_owned(),
            })
    }
}
