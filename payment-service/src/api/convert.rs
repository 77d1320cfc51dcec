//! Wire <-> domain conversions.

use gongji_proto::payment::v1 as pb;
use gongji_shared::{
    IdNumber,
    domain::money::format_signed_fen,
    policy::{Bucket, Purpose},
    rpc::{ApiError, auth::Caller, timestamp, validate},
};

use crate::app::{FamilyUsage, YearStatement};
use crate::domain::{
    Account, AccountEntry, AccountEvent, MovementKind, SettlementPurpose,
    medical::{InstitutionKind, MedicalPayment},
    medical_refund::MedicalRefund,
    payment::{Channel, OtherMeans, PaymentState, PremiumPayment},
    premium::{Continuity, PremiumTerms},
    settlement::Settlement,
    split::{Draw, Split},
    statement::Balances,
    usage::{RecordedUse, UseKind, UseTotal},
};

pub fn bucket_from_pb(raw: i32, field: &str) -> Result<Bucket, ApiError> {
    let parsed = match pb::Bucket::try_from(raw) {
        Ok(pb::Bucket::CurrentYear) => Some(Bucket::CurrentYear),
        Ok(pb::Bucket::PriorYears) => Some(Bucket::PriorYears),
        _ => None,
    };
    validate::known_enum(parsed, raw, "INVALID_BUCKET", field)
}

pub fn bucket_to_pb(b: Bucket) -> pb::Bucket {
    match b {
        Bucket::CurrentYear => pb::Bucket::CurrentYear,
        Bucket::PriorYears => pb::Bucket::PriorYears,
    }
}

pub fn account_to_pb(a: &Account, usable_buckets: &[Bucket]) -> pb::Account {
    pb::Account {
        holder_id_number: a.holder.as_str().to_owned(),
        region_code: a.region.as_str().to_owned(),
        current_year_balance: a.current_year.to_string(),
        prior_years_balance: a.prior_years.to_string(),
        usable_for_family_balance: a.usable(usable_buckets).to_string(),
        usable_buckets: usable_buckets
            .iter()
            .map(|b| bucket_to_pb(*b) as i32)
            .collect(),
        open_time: Some(timestamp(a.open_time)),
    }
}

fn kind_to_pb(k: MovementKind) -> pb::EntryKind {
    match k {
        MovementKind::Credit => pb::EntryKind::Credit,
        MovementKind::Premium => pb::EntryKind::Premium,
        MovementKind::MedicalExpense => pb::EntryKind::MedicalExpense,
        MovementKind::Refund => pb::EntryKind::Refund,
        MovementKind::CloseYear => pb::EntryKind::CloseYear,
        MovementKind::WalletTransfer => pb::EntryKind::WalletTransfer,
    }
}

pub fn entry_to_pb(e: &AccountEntry) -> pb::AccountEntry {
    pb::AccountEntry {
        entry_id: e.entry_id.to_string(),
        movement_id: e.movement_id.clone(),
        kind: kind_to_pb(e.kind) as i32,
        bucket: bucket_to_pb(e.bucket) as i32,
        amount: format_signed_fen(e.amount_fen),
        request_id: e.request_id.clone(),
        create_time: Some(timestamp(e.create_time)),
        business_date: e.business_date.to_string(),
        memo: e.memo.clone(),
        caller: e.caller.clone(),
        family_beneficiary_id_number: e
            .family
            .as_ref()
            .map(|f| f.beneficiary.as_str().to_owned())
            .unwrap_or_default(),
        binding_id: e
            .family
            .as_ref()
            .map(|f| f.binding_id.clone())
            .unwrap_or_default(),
        institution_code: e
            .family
            .as_ref()
            .and_then(|f| f.institution_code.clone())
            .unwrap_or_default(),
    }
}

pub fn draw_to_pb(d: &Draw) -> pb::BucketDraw {
    pb::BucketDraw {
        bucket: bucket_to_pb(d.bucket) as i32,
        amount: d.amount.to_string(),
    }
}

pub struct QuoteView<'a> {
    pub year: i32,
    pub region: &'a str,
    pub terms: &'a PremiumTerms,
    pub split: &'a Split,
    pub payment_date: chrono::NaiveDate,
    pub back_payment: bool,
    /// QuotePremium's only: a payment's record has none.
    pub continuity: Option<&'a Continuity>,
}

pub fn quote_to_pb(q: &QuoteView<'_>) -> pb::PremiumQuote {
    let years = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    pb::PremiumQuote {
        consecutive_paid_years: q.continuity.map_or(0, |c| years(c.consecutive_years)),
        gap_years: q.continuity.map_or(0, |c| years(c.gap_years)),
        waiting_months_in_window: q
            .continuity
            .map_or(0, |c| years(c.waiting_months_in_window)),
        continuity_incentive: q.continuity.and_then(|c| c.incentive.as_ref()).map(|i| {
            pb::ContinuityIncentive {
                raise_kept: i.raise_kept.to_string(),
                source: i.source.clone(),
                unconfirmed: i.unconfirmed,
            }
        }),
        coverage_year: q.year,
        beneficiary_region_code: q.region.to_owned(),
        premium: q.terms.premium.to_string(),
        account_part: q.split.account_part.to_string(),
        draws: q.split.draws.iter().map(draw_to_pb).collect(),
        other_means_part: q.split.other_part.to_string(),
        payment_date: q.payment_date.to_string(),
        in_collection_window: q.terms.in_window,
        window_start_date: q.terms.window.start.to_string(),
        window_end_date: q.terms.window.end.to_string(),
        waiting_months: i32::try_from(q.terms.waiting_months).unwrap_or(i32::MAX),
        benefit_start_date: q.terms.cover.map(|c| c.0.to_string()).unwrap_or_default(),
        benefit_end_date: q.terms.cover.map(|c| c.1.to_string()).unwrap_or_default(),
        back_payment: q.back_payment,
    }
}

pub fn channel_from_pb(raw: i32) -> Result<Channel, ApiError> {
    let parsed = match pb::Channel::try_from(raw) {
        Ok(pb::Channel::Cash) => Some(Channel::Cash),
        Ok(pb::Channel::Bank) => Some(Channel::Bank),
        Ok(pb::Channel::WechatPay) => Some(Channel::WechatPay),
        Ok(pb::Channel::Alipay) => Some(Channel::Alipay),
        _ => None,
    };
    validate::known_enum(parsed, raw, "INVALID_OTHER_MEANS", "other_means.channel")
}

fn channel_to_pb(c: Channel) -> pb::Channel {
    match c {
        Channel::Cash => pb::Channel::Cash,
        Channel::Bank => pb::Channel::Bank,
        Channel::WechatPay => pb::Channel::WechatPay,
        Channel::Alipay => pb::Channel::Alipay,
    }
}

pub fn other_means_to_pb(o: &OtherMeans) -> pb::OtherMeans {
    pb::OtherMeans {
        amount: o.amount.to_string(),
        channel: channel_to_pb(o.channel) as i32,
        reference: o.reference.clone(),
    }
}

pub fn payment_to_pb(p: &PremiumPayment) -> pb::PremiumPayment {
    pb::PremiumPayment {
        payment_id: p.payment_id.clone(),
        request_id: p.request_id.clone(),
        payer_id_number: p.payer.as_str().to_owned(),
        beneficiary_id_number: p.beneficiary.as_str().to_owned(),
        quote: Some(quote_to_pb(&QuoteView {
            year: p.year.get(),
            region: p.beneficiary_region.as_str(),
            terms: &p.terms,
            split: &p.split,
            payment_date: p.payment_date,
            back_payment: p.back_payment,
            continuity: None,
        })),
        other_means: p.other_means.as_ref().map(other_means_to_pb),
        state: match p.state {
            PaymentState::Paid => pb::PremiumPaymentState::Paid,
            PaymentState::Refunded => pb::PremiumPaymentState::Refunded,
        } as i32,
        binding_id: p.binding_id.clone(),
        binding_version: p.binding_version,
        payer_region_code: p.payer_region.as_str().to_owned(),
        pay_time: Some(timestamp(p.pay_time)),
        refund_time: p.refund_time.map(timestamp),
        refund_reason: p.refund_reason.clone().unwrap_or_default(),
        other_means_owed_back: match p.state {
            PaymentState::Refunded => p.other_means.as_ref().map(other_means_to_pb),
            PaymentState::Paid => None,
        },
        movement_id: if p.split.account_part.is_zero() {
            String::new()
        } else {
            p.movement_id.clone()
        },
    }
}

pub fn institution_kind_from_pb(raw: i32) -> Result<InstitutionKind, ApiError> {
    let parsed = match pb::InstitutionKind::try_from(raw) {
        Ok(pb::InstitutionKind::Hospital) => Some(InstitutionKind::Hospital),
        Ok(pb::InstitutionKind::Pharmacy) => Some(InstitutionKind::Pharmacy),
        _ => None,
    };
    validate::known_enum(parsed, raw, "INVALID_INSTITUTION", "institution_kind")
}

pub fn medical_to_pb(p: &MedicalPayment) -> pb::MedicalExpensePayment {
    pb::MedicalExpensePayment {
        payment_id: p.payment_id.clone(),
        request_id: p.request_id.clone(),
        beneficiary_id_number: p.beneficiary.as_str().to_owned(),
        family_account_holder_id_number: p
            .family_holder
            .as_ref()
            .map(|h| h.as_str().to_owned())
            .unwrap_or_default(),
        institution_code: p.institution_code.clone(),
        institution_kind: match p.institution_kind {
            InstitutionKind::Hospital => pb::InstitutionKind::Hospital,
            InstitutionKind::Pharmacy => pb::InstitutionKind::Pharmacy,
        } as i32,
        amount: p.amount.to_string(),
        own_account_draws: p.own_draws.iter().map(draw_to_pb).collect(),
        family_account_draws: p.family_draws.iter().map(draw_to_pb).collect(),
        other_means_part: p.other_part.to_string(),
        binding_id: p.binding_id.clone(),
        binding_version: p.binding_version,
        pay_time: Some(timestamp(p.pay_time)),
        movement_id: p.movement_id.clone().unwrap_or_default(),
        refunded_amount: p.refunded.to_string(),
    }
}

pub fn medical_refund_to_pb(r: &MedicalRefund) -> pb::MedicalExpenseRefund {
    pb::MedicalExpenseRefund {
        refund_id: r.refund_id.clone(),
        payment_id: r.payment_id.clone(),
        request_id: r.request_id.clone(),
        amount: r.amount.to_string(),
        own_account_parts: r.parts.own.iter().map(draw_to_pb).collect(),
        family_account_parts: r.parts.family.iter().map(draw_to_pb).collect(),
        other_means_owed_back: r.parts.other_means.to_string(),
        refunded_total: r.refunded_total.to_string(),
        reason: r.reason.clone(),
        refund_time: Some(timestamp(r.refund_time)),
        business_date: r.business_date.to_string(),
        movement_id: r.movement_id.clone().unwrap_or_default(),
    }
}

pub fn settlement_to_pb(
    s: &Settlement,
    settle_time: chrono::DateTime<chrono::Utc>,
) -> pb::Settlement {
    pb::Settlement {
        business_date: s.business_date.to_string(),
        lines: s
            .lines
            .iter()
            .map(|l| pb::SettlementLine {
                source_region_code: l.source.as_str().to_owned(),
                destination_region_code: l.destination.as_str().to_owned(),
                purpose: match l.purpose {
                    SettlementPurpose::Premium => pb::SettlementPurpose::Premium,
                    SettlementPurpose::MedicalExpense => pb::SettlementPurpose::MedicalExpense,
                    SettlementPurpose::FamilyWallet => pb::SettlementPurpose::FamilyWallet,
                } as i32,
                gross_amount: format_signed_fen(l.gross_fen),
                refunded_amount: format_signed_fen(l.refunded_fen),
                net_amount: format_signed_fen(l.net_fen()),
                payment_count: l.payment_count,
                refund_count: l.refund_count,
            })
            .collect(),
        movement_count: s.movement_count,
        digest: s.digest.clone(),
        settle_time: Some(timestamp(settle_time)),
    }
}

/// A listing's purpose filter: UNSPECIFIED is both.
pub fn usage_purpose_from_pb(raw: i32) -> Result<Option<Purpose>, ApiError> {
    match pb::UsagePurpose::try_from(raw) {
        Ok(pb::UsagePurpose::Unspecified) => Ok(None),
        Ok(pb::UsagePurpose::Premium) => Ok(Some(Purpose::Premium)),
        Ok(pb::UsagePurpose::MedicalExpense) => Ok(Some(Purpose::MedicalExpense)),
        Ok(pb::UsagePurpose::FamilyWallet) => Ok(Some(Purpose::FamilyWallet)),
        Err(_) => Err(ApiError::invalid_argument(
            "INVALID_PURPOSE",
            "purpose",
            "purpose must be UNSPECIFIED, PREMIUM, MEDICAL_EXPENSE or FAMILY_WALLET",
        )
        .with_metadata("purpose", raw)),
    }
}

fn usage_purpose_to_pb(p: Purpose) -> pb::UsagePurpose {
    match p {
        Purpose::Premium => pb::UsagePurpose::Premium,
        Purpose::MedicalExpense => pb::UsagePurpose::MedicalExpense,
        Purpose::FamilyWallet => pb::UsagePurpose::FamilyWallet,
    }
}

/// A party's name as `caller` may see it; empty when the registry gave none.
fn name_of(usage: &FamilyUsage, id: &IdNumber, caller: &Caller) -> String {
    usage
        .names
        .get(id)
        .map(|n| caller.name(n))
        .unwrap_or_default()
}

pub fn use_to_pb(u: &RecordedUse, usage: &FamilyUsage, caller: &Caller) -> pb::FamilyUse {
    let n = &u.new;
    pb::FamilyUse {
        use_id: u.use_id,
        kind: match n.kind {
            UseKind::Debit => pb::FamilyUseKind::Debit,
            UseKind::Refund => pb::FamilyUseKind::Refund,
        } as i32,
        purpose: usage_purpose_to_pb(n.purpose) as i32,
        authorizer_id_number: n.authorizer.as_str().to_owned(),
        authorizer_name: name_of(usage, &n.authorizer, caller),
        beneficiary_id_number: n.beneficiary.as_str().to_owned(),
        beneficiary_name: name_of(usage, &n.beneficiary, caller),
        binding_id: n.binding_id.clone(),
        amount: format_signed_fen(n.amount_fen),
        institution_code: n.institution_code.clone().unwrap_or_default(),
        payment_id: n.payment_id.clone(),
        movement_id: n.movement_id.clone(),
        business_date: n.business_date.to_string(),
        create_time: Some(timestamp(n.create_time)),
    }
}

pub fn use_total_to_pb(t: &UseTotal, usage: &FamilyUsage, caller: &Caller) -> pb::FamilyUsageTotal {
    pb::FamilyUsageTotal {
        beneficiary_id_number: t.beneficiary.as_str().to_owned(),
        beneficiary_name: name_of(usage, &t.beneficiary, caller),
        purpose: usage_purpose_to_pb(t.purpose) as i32,
        debited_amount: format_signed_fen(t.debited_fen),
        refunded_amount: format_signed_fen(t.refunded_fen),
        net_amount: format_signed_fen(t.net_fen()),
        debit_count: t.debit_count,
    }
}

pub fn account_event_to_pb(e: &AccountEvent) -> pb::AccountEvent {
    let first = e.entries.first();
    pb::AccountEvent {
        position: e.position,
        holder_id_number: e.holder.as_str().to_owned(),
        movement_id: first.map(|f| f.movement_id.clone()).unwrap_or_default(),
        kind: first.map_or(pb::EntryKind::Unspecified, |f| kind_to_pb(f.kind)) as i32,
        amount: format_signed_fen(e.amount_fen()),
        purpose: match e.purpose {
            None => pb::UsagePurpose::Unspecified,
            Some(SettlementPurpose::Premium) => pb::UsagePurpose::Premium,
            Some(SettlementPurpose::MedicalExpense) => pb::UsagePurpose::MedicalExpense,
            Some(SettlementPurpose::FamilyWallet) => pb::UsagePurpose::FamilyWallet,
        } as i32,
        entries: e.entries.iter().map(entry_to_pb).collect(),
    }
}

fn balances_to_pb(b: &Balances) -> pb::BucketBalances {
    pb::BucketBalances {
        current_year: format_signed_fen(b.current_fen),
        prior_years: format_signed_fen(b.prior_fen),
    }
}

pub fn statement_to_pb(s: &YearStatement) -> pb::AccountStatement {
    let st = &s.statement;
    pb::AccountStatement {
        holder_id_number: s.holder.as_str().to_owned(),
        year: s.year,
        complete: s.complete,
        opening: Some(balances_to_pb(&st.opening)),
        credits: format_signed_fen(st.credits_fen),
        own_spending: format_signed_fen(st.own_spending_fen),
        family_usage: st
            .family
            .iter()
            .map(|((who, purpose), line)| pb::StatementFamilyLine {
                beneficiary_id_number: who.as_str().to_owned(),
                purpose: usage_purpose_to_pb(*purpose) as i32,
                debited_amount: format_signed_fen(line.debited_fen),
                refunded_amount: format_signed_fen(line.refunded_fen),
            })
            .collect(),
        family_debited: format_signed_fen(st.family_debited_fen()),
        refunds: format_signed_fen(st.refunds_fen),
        year_closings: st
            .closings
            .iter()
            .map(|(year, moved)| pb::StatementYearClosing {
                closed_year: *year,
                moved_amount: format_signed_fen(*moved),
            })
            .collect(),
        closing: Some(balances_to_pb(&st.closing)),
    }
}
