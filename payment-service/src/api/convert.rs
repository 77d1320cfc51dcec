//! Wire <-> domain conversions.

use gongji_proto::payment::v1 as pb;
use gongji_shared::{
    money::format_signed_fen,
    policy::Bucket,
    rpc::{ApiError, timestamp, validate},
};

use crate::domain::{
    Account, AccountEntry, MovementKind,
    payment::{Channel, OtherMeans, PaymentState, PremiumPayment},
    premium::PremiumTerms,
    split::{Draw, Split},
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
    }
}

fn draw_to_pb(d: &Draw) -> pb::BucketDraw {
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
}

pub fn quote_to_pb(q: &QuoteView<'_>) -> pb::PremiumQuote {
    pb::PremiumQuote {
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
    }
}
