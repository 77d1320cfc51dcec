//! Authorizer limits on the wire (binding.v1.BindingLimit): binding-service answers with
//! them, payment-service reads them from its answers.

use gongji_proto::binding::v1 as pb;

use crate::{
    Money,
    domain::limits::{FamilyLimit, FamilyLimits, LimitPeriod, LimitsError},
    policy::Purpose,
};

/// Limits as the wire carries them.
pub fn limits_to_pb(limits: &FamilyLimits) -> Vec<pb::BindingLimit> {
    limits
        .iter()
        .map(|l| pb::BindingLimit {
            purpose: match l.purpose {
                None => pb::Purpose::Unspecified,
                Some(Purpose::Premium) => pb::Purpose::Premium,
                Some(Purpose::MedicalExpense) => pb::Purpose::MedicalExpense,
                Some(Purpose::FamilyWallet) => pb::Purpose::FamilyWallet,
            } as i32,
            period: match l.period {
                LimitPeriod::Month => pb::LimitPeriod::Month,
                LimitPeriod::Year => pb::LimitPeriod::Year,
            } as i32,
            amount: l.amount.to_string(),
        })
        .collect()
}

/// Why wire limits are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireLimitsError {
    #[error("limit {index}: purpose or period not a known value")]
    UnknownEnum { index: usize },
    #[error("limit {index}: amount is not money in yuan with at most two places")]
    Amount { index: usize },
    #[error(transparent)]
    Limits(#[from] LimitsError),
}

/// Limits read from the wire.
pub fn limits_from_pb(raw: &[pb::BindingLimit]) -> Result<FamilyLimits, WireLimitsError> {
    let limits = raw
        .iter()
        .enumerate()
        .map(|(index, l)| {
            let purpose = match pb::Purpose::try_from(l.purpose) {
                Ok(pb::Purpose::Unspecified) => None,
                Ok(pb::Purpose::Premium) => Some(Purpose::Premium),
                Ok(pb::Purpose::MedicalExpense) => Some(Purpose::MedicalExpense),
                Ok(pb::Purpose::FamilyWallet) => Some(Purpose::FamilyWallet),
                Err(_) => return Err(WireLimitsError::UnknownEnum { index }),
            };
            let period = match pb::LimitPeriod::try_from(l.period) {
                Ok(pb::LimitPeriod::Month) => LimitPeriod::Month,
                Ok(pb::LimitPeriod::Year) => LimitPeriod::Year,
                _ => return Err(WireLimitsError::UnknownEnum { index }),
            };
            let amount = Money::parse(&l.amount).map_err(|_| WireLimitsError::Amount { index })?;
            Ok(FamilyLimit {
                purpose,
                period,
                amount,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FamilyLimits::parse(limits)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_cross_the_wire_and_back() {
        let limits = FamilyLimits::parse(vec![FamilyLimit {
            purpose: Some(Purpose::MedicalExpense),
            period: LimitPeriod::Year,
            amount: Money::parse("3000.00").unwrap(),
        }])
        .unwrap();
        assert_eq!(limits_from_pb(&limits_to_pb(&limits)), Ok(limits));
        let unset = pb::BindingLimit {
            purpose: 0,
            period: 0,
            amount: "1.00".into(),
        };
        assert_eq!(
            limits_from_pb(&[unset]),
            Err(WireLimitsError::UnknownEnum { index: 0 })
        );
    }
}
