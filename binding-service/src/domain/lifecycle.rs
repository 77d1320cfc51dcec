//! How a binding changes state after its application (B5, B7): the beneficiary's consent,
//! review, revocation, and the ending that follows a registry change. Each change is a new
//! version with an audit event.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use gongji_shared::{
    IdNumber,
    domain::limits::FamilyLimits,
    policy::{BindingRules, ConsentRule, ReviewMode},
};

use super::{
    Binding, BindingEvent, BindingKind, BindingState, EnrollmentStatus, Person, VerificationMethod,
};

/// Why a change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRefusal {
    /// The person asking is neither side of the binding.
    NotAParty,
    /// The binding is no longer live.
    NotActive,
    /// Review applies only to PENDING_REVIEW bindings.
    NotPending,
    /// Only the authorizer sets limits on their account's use.
    NotTheAuthorizer,
    /// Limits are set on an ACTIVE funds-sharing binding only.
    NotFundsSharing,
    /// A limit is above what the policy allows for its period.
    AbovePolicyMaximum {
        period: gongji_shared::domain::limits::LimitPeriod,
        maximum: gongji_shared::Money,
    },
    /// Only the beneficiary accepts or declines a binding request.
    NotTheBeneficiary,
    /// Accepting and declining apply to a binding waiting for consent only.
    NotPendingConsent,
    /// The request waited past its time; it expires.
    ConsentExpired { expire_time: DateTime<Utc> },
}

/// A change to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub to: BindingState,
    pub actor: String,
    pub reason: String,
    /// New limits, when the change sets them.
    pub limits: Option<FamilyLimits>,
    /// How the channel verified the person acting, as it reported (a consent's evidence).
    pub verification: Option<VerificationMethod>,
}

impl Change {
    /// A change to `to` by `actor`, for `reason`, nothing else.
    pub fn to(to: BindingState, actor: &str, reason: &str) -> Self {
        Self {
            to,
            actor: actor.to_owned(),
            reason: reason.to_owned(),
            limits: None,
            verification: None,
        }
    }
}

/// B5 (two-party consent): until when a binding to `beneficiary`, applied for at `now`, waits
/// for the beneficiary's acceptance under `rule`; `None` when it needs none (no rule, or a
/// minor bound by the parent as guardian).
pub fn consent_deadline(
    rule: Option<&ConsentRule>,
    beneficiary: &IdNumber,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let rule = rule?;
    let adult = age_on(beneficiary.birth_date(), today) >= rule.from_age;
    adult.then(|| now + chrono::Duration::days(i64::from(rule.expiry_days)))
}

/// Whole years from `birth` to `day`.
fn age_on(birth: NaiveDate, day: NaiveDate) -> u32 {
    let years = day.year() - birth.year();
    let before_birthday = (day.month(), day.day()) < (birth.month(), birth.day());
    u32::try_from(years - i32::from(before_birthday)).unwrap_or(0)
}

/// B5: the beneficiary accepts a binding waiting for consent, in time: it is ACTIVE, or waits
/// for review under manual review.
pub fn accept(
    binding: &Binding,
    requester: &IdNumber,
    review_mode: ReviewMode,
    verification: VerificationMethod,
    now: DateTime<Utc>,
) -> Result<Change, ChangeRefusal> {
    answerable(binding, requester, now)?;
    let to = match review_mode {
        ReviewMode::Automatic => BindingState::Active,
        ReviewMode::Manual => BindingState::PendingReview,
    };
    Ok(Change {
        verification: Some(verification),
        ..Change::to(to, "beneficiary", "accepted by the beneficiary")
    })
}

/// B5: the beneficiary declines a binding waiting for consent.
pub fn decline(
    binding: &Binding,
    requester: &IdNumber,
    reason: &str,
    verification: VerificationMethod,
    now: DateTime<Utc>,
) -> Result<Change, ChangeRefusal> {
    answerable(binding, requester, now)?;
    Ok(Change {
        verification: Some(verification),
        ..Change::to(BindingState::Declined, "beneficiary", reason)
    })
}

/// Whether `requester` may answer `binding`'s request for consent at `now`.
fn answerable(
    binding: &Binding,
    requester: &IdNumber,
    now: DateTime<Utc>,
) -> Result<(), ChangeRefusal> {
    if requester != &binding.beneficiary {
        return Err(ChangeRefusal::NotTheBeneficiary);
    }
    if binding.state != BindingState::PendingConsent {
        return Err(ChangeRefusal::NotPendingConsent);
    }
    match binding.consent_expire_time {
        Some(expire_time) if now > expire_time => {
            Err(ChangeRefusal::ConsentExpired { expire_time })
        }
        _ => Ok(()),
    }
}

/// B5: a request for consent unanswered past its time expires (the system's change).
pub fn expire(binding: &Binding, now: DateTime<Utc>) -> Result<Change, ChangeRefusal> {
    if binding.state != BindingState::PendingConsent {
        return Err(ChangeRefusal::NotPendingConsent);
    }
    match binding.consent_expire_time {
        Some(expire_time) if now > expire_time => Ok(Change::to(
            BindingState::Expired,
            "system",
            "the beneficiary did not answer in time",
        )),
        _ => Err(ChangeRefusal::NotPendingConsent),
    }
}

/// B7: either side may end a live binding; nobody else may.
pub fn revoke(
    binding: &Binding,
    requester: &IdNumber,
    reason: &str,
) -> Result<Change, ChangeRefusal> {
    let actor = if requester == &binding.authorizer {
        "authorizer"
    } else if requester == &binding.beneficiary {
        "beneficiary"
    } else {
        return Err(ChangeRefusal::NotAParty);
    };
    if !binding.state.is_live() {
        return Err(ChangeRefusal::NotActive);
    }
    Ok(Change::to(BindingState::Revoked, actor, reason))
}

/// The authorizer sets the limits of an ACTIVE funds-sharing binding, within the policy's
/// maxima: the binding stays ACTIVE, and the change is an audited event like any other.
pub fn set_limits(
    binding: &Binding,
    requester: &IdNumber,
    limits: FamilyLimits,
    policy: &gongji_shared::policy::FamilyLimitPolicy,
) -> Result<Change, ChangeRefusal> {
    if requester != &binding.authorizer {
        return Err(ChangeRefusal::NotTheAuthorizer);
    }
    if binding.kind != BindingKind::FundsSharing {
        return Err(ChangeRefusal::NotFundsSharing);
    }
    if binding.state != BindingState::Active {
        return Err(ChangeRefusal::NotActive);
    }
    for limit in limits.iter() {
        if let Some(maximum) = policy.maximum(limit.period)
            && limit.amount > maximum
        {
            return Err(ChangeRefusal::AbovePolicyMaximum {
                period: limit.period,
                maximum,
            });
        }
    }
    Ok(Change {
        limits: Some(limits.clone()),
        ..Change::to(
            BindingState::Active,
            "authorizer",
            &format!("limits set: {limits}"),
        )
    })
}

/// B5: an operator approves or rejects a pending application.
pub fn review(
    binding: &Binding,
    approve: bool,
    reviewer: &str,
    reason: &str,
) -> Result<Change, ChangeRefusal> {
    if binding.state != BindingState::PendingReview {
        return Err(ChangeRefusal::NotPending);
    }
    let to = if approve {
        BindingState::Active
    } else {
        BindingState::Rejected
    };
    Ok(Change::to(to, &format!("reviewer:{reviewer}"), reason))
}

/// The binding and its audit event after `change`.
pub fn apply(
    binding: &Binding,
    change: &Change,
    request_id: &str,
    at: DateTime<Utc>,
) -> (Binding, BindingEvent) {
    let version = binding.version + 1;
    let next = Binding {
        state: change.to,
        version,
        update_time: at,
        // A limit change leaves the state, and why it is in it, as they were.
        state_reason: match change.limits {
            Some(_) => binding.state_reason.clone(),
            None => change.reason.clone(),
        },
        limits: change
            .limits
            .clone()
            .unwrap_or_else(|| binding.limits.clone()),
        ..binding.clone()
    };
    let event = BindingEvent {
        sequence: 0,
        binding_id: binding.binding_id.clone(),
        from_state: Some(binding.state),
        to_state: change.to,
        actor: change.actor.clone(),
        reason: change.reason.clone(),
        request_id: request_id.to_owned(),
        event_time: at,
        binding_version: version,
        caller: String::new(),
        acting_person: None,
        verification: change.verification,
    };
    (next, event)
}

/// B7: the live bindings a registry change ends, with the reason. A SUSPENDED enrollment
/// keeps its bindings (authorization is denied meanwhile); a TERMINATED one, or one that
/// left the scope the policy allows, ends every binding that depends on it.
pub fn endings(
    person: &Person,
    live: &[Binding],
    rules: Option<&BindingRules>,
    province: &str,
) -> Vec<(Binding, Change)> {
    let cross_province = rules.is_some_and(|r| r.cross_province_funds_sharing);
    let lends = person.employee.as_ref().is_some_and(|e| {
        e.status != EnrollmentStatus::Terminated && e.region.province() == province
    });
    let insured_region = person.insured_region(province);
    live.iter()
        .filter(|b| b.state.is_live())
        .filter_map(|b| {
            let reason = if b.authorizer == person.id_number
                && b.kind == BindingKind::FundsSharing
                && !lends
            {
                Some("the authorizer's employee insurance ended or left the province")
            } else if b.beneficiary == person.id_number {
                match (insured_region, b.kind) {
                    (None, _) => Some("the beneficiary's insurance ended"),
                    (Some(region), BindingKind::FundsSharing)
                        if region.province() != province && !cross_province =>
                    {
                        Some("the beneficiary's insurance moved outside the allowed scope")
                    }
                    _ => None,
                }
            } else if b.authorizer == person.id_number
                && b.kind == BindingKind::Proxy
                && insured_region.is_none()
            {
                Some("the authorizer's insurance ended")
            } else {
                None
            };
            reason.map(|reason| (b.clone(), Change::to(BindingState::Ended, "system", reason)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use gongji_shared::{PersonName, RegionCode, Relationship};

    use super::*;
    use crate::domain::Enrollment;

    const A: &str = "34052419800101001X";
    const B: &str = "11010519491231002X";

    fn id(s: &str) -> IdNumber {
        IdNumber::parse(s).unwrap()
    }

    fn binding(kind: BindingKind, state: BindingState) -> Binding {
        Binding {
            binding_id: "b1".into(),
            authorizer: id(A),
            beneficiary: id(B),
            beneficiary_name: PersonName::parse("张三").unwrap(),
            relationship: Relationship::Child,
            kind,
            state,
            version: 1,
            create_time: Utc::now(),
            update_time: Utc::now(),
            state_reason: String::new(),
            limits: gongji_shared::domain::limits::FamilyLimits::none(),
            consent_expire_time: None,
        }
    }

    fn person(
        id_number: &str,
        employee: Option<(&str, EnrollmentStatus)>,
        resident: Option<(&str, EnrollmentStatus)>,
    ) -> Person {
        let e = |(r, s): (&str, EnrollmentStatus)| Enrollment {
            region: RegionCode::parse(r).unwrap(),
            status: s,
        };
        Person {
            id_number: id(id_number),
            name: PersonName::parse("某").unwrap(),
            employee: employee.map(e),
            resident: resident.map(e),
            resident_paid_years: Vec::new(),
            update_time: Utc::now(),
        }
    }

    #[test]
    fn only_the_authorizer_limits_an_active_funds_sharing_binding_within_the_policy() {
        use gongji_shared::{
            Money,
            domain::limits::{FamilyLimit, LimitPeriod},
            policy::FamilyLimitPolicy,
        };
        let monthly = |amount: &str| {
            FamilyLimits::parse(vec![FamilyLimit {
                purpose: None,
                period: LimitPeriod::Month,
                amount: Money::parse(amount).unwrap(),
            }])
            .unwrap()
        };
        let policy = FamilyLimitPolicy {
            max_monthly: Some(Money::parse("1000.00").unwrap()),
            ..FamilyLimitPolicy::default()
        };
        let active = binding(BindingKind::FundsSharing, BindingState::Active);
        let change = set_limits(&active, &id(A), monthly("500.00"), &policy).unwrap();
        let (next, event) = apply(&active, &change, "r", Utc::now());
        assert_eq!(next.limits, monthly("500.00"));
        assert_eq!((next.state, next.version), (BindingState::Active, 2));
        assert_eq!(
            next.state_reason, active.state_reason,
            "the state's reason stays"
        );
        assert_eq!(event.actor, "authorizer");
        assert_eq!(
            set_limits(&active, &id(B), monthly("500.00"), &policy),
            Err(ChangeRefusal::NotTheAuthorizer)
        );
        assert!(matches!(
            set_limits(&active, &id(A), monthly("1000.01"), &policy),
            Err(ChangeRefusal::AbovePolicyMaximum {
                period: LimitPeriod::Month,
                ..
            })
        ));
        let proxy = binding(BindingKind::Proxy, BindingState::Active);
        assert_eq!(
            set_limits(&proxy, &id(A), monthly("1.00"), &policy),
            Err(ChangeRefusal::NotFundsSharing)
        );
        let ended = binding(BindingKind::FundsSharing, BindingState::Revoked);
        assert_eq!(
            set_limits(&ended, &id(A), monthly("1.00"), &policy),
            Err(ChangeRefusal::NotActive)
        );
        // Any other change keeps the limits.
        let revoked = revoke(&next, &id(A), "done").unwrap();
        assert_eq!(
            apply(&next, &revoked, "r2", Utc::now()).0.limits,
            next.limits
        );
    }

    #[test]
    fn only_a_party_may_revoke_and_is_recorded_as_its_side() {
        let b = binding(BindingKind::FundsSharing, BindingState::Active);
        assert_eq!(revoke(&b, &id(A), "r").unwrap().actor, "authorizer");
        assert_eq!(revoke(&b, &id(B), "r").unwrap().actor, "beneficiary");
        assert_eq!(
            revoke(&b, &id("440524188001010014"), "r"),
            Err(ChangeRefusal::NotAParty)
        );
    }

    #[test]
    fn an_ended_binding_cannot_be_revoked_again() {
        let b = binding(BindingKind::FundsSharing, BindingState::Revoked);
        assert_eq!(revoke(&b, &id(A), "r"), Err(ChangeRefusal::NotActive));
    }

    #[test]
    fn review_applies_to_pending_bindings_only() {
        let pending = binding(BindingKind::FundsSharing, BindingState::PendingReview);
        assert_eq!(
            review(&pending, true, "op", "ok").unwrap().to,
            BindingState::Active
        );
        assert_eq!(
            review(&pending, false, "op", "no").unwrap().to,
            BindingState::Rejected
        );
        let active = binding(BindingKind::FundsSharing, BindingState::Active);
        assert_eq!(
            review(&active, true, "op", "ok"),
            Err(ChangeRefusal::NotPending)
        );
    }

    #[test]
    fn apply_bumps_the_version_and_records_the_change() {
        let b = binding(BindingKind::FundsSharing, BindingState::Active);
        let change = revoke(&b, &id(B), "moved out").unwrap();
        let (next, event) = apply(&b, &change, "req", Utc::now());
        assert_eq!((next.state, next.version), (BindingState::Revoked, 2));
        assert_eq!(event.from_state, Some(BindingState::Active));
        assert_eq!(
            (event.actor.as_str(), event.reason.as_str()),
            ("beneficiary", "moved out")
        );
    }

    #[test]
    fn a_terminated_authorizer_ends_funds_sharing_but_a_suspended_one_does_not() {
        let live = [binding(BindingKind::FundsSharing, BindingState::Active)];
        let terminated = person(A, Some(("340500", EnrollmentStatus::Terminated)), None);
        assert_eq!(endings(&terminated, &live, None, "34").len(), 1);
        let suspended = person(A, Some(("340500", EnrollmentStatus::Suspended)), None);
        assert!(endings(&suspended, &live, None, "34").is_empty());
    }

    #[test]
    fn a_beneficiary_moving_out_of_province_ends_funds_sharing_but_not_proxy() {
        let moved = person(B, None, Some(("320500", EnrollmentStatus::Normal)));
        let funds = [binding(BindingKind::FundsSharing, BindingState::Active)];
        let proxy = [binding(BindingKind::Proxy, BindingState::Active)];
        assert_eq!(endings(&moved, &funds, None, "34").len(), 1);
        assert!(endings(&moved, &proxy, None, "34").is_empty());
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn an_adult_accepts_and_a_minor_is_bound_by_the_guardian() {
        let rule = ConsentRule {
            from_age: 16,
            expiry_days: 7,
        };
        let now = Utc::now();
        // B (11010519491231002X) was born 1949-12-31.
        let expires = consent_deadline(Some(&rule), &id(B), day("2026-08-01"), now);
        assert_eq!(expires, Some(now + chrono::Duration::days(7)));
        // Whole years: 16 on the birthday, 15 the day before.
        let born = |s: &str| {
            let body = format!("340504{s}001");
            IdNumber::parse(&format!(
                "{body}{}",
                IdNumber::check_char_of(&body).unwrap()
            ))
            .unwrap()
        };
        let sixteen = born("20100801");
        assert!(consent_deadline(Some(&rule), &sixteen, day("2026-08-01"), now).is_some());
        assert_eq!(
            consent_deadline(Some(&rule), &sixteen, day("2026-07-31"), now),
            None
        );
        assert_eq!(consent_deadline(None, &id(B), day("2026-08-01"), now), None);
    }

    #[test]
    fn only_the_beneficiary_answers_in_time_a_binding_waiting_for_consent() {
        let now = Utc::now();
        let mut pending = binding(BindingKind::FundsSharing, BindingState::PendingConsent);
        pending.consent_expire_time = Some(now + chrono::Duration::days(7));
        let face = VerificationMethod::FaceRecognition;
        let accepted = accept(&pending, &id(B), ReviewMode::Automatic, face, now).unwrap();
        assert_eq!(
            (accepted.to, accepted.actor.as_str(), accepted.verification),
            (BindingState::Active, "beneficiary", Some(face))
        );
        let reviewed = accept(&pending, &id(B), ReviewMode::Manual, face, now).unwrap();
        assert_eq!(reviewed.to, BindingState::PendingReview);
        assert_eq!(
            accept(&pending, &id(A), ReviewMode::Automatic, face, now),
            Err(ChangeRefusal::NotTheBeneficiary)
        );
        let declined = decline(&pending, &id(B), "no", face, now).unwrap();
        assert_eq!(declined.to, BindingState::Declined);
        let late = now + chrono::Duration::days(8);
        assert_eq!(
            accept(&pending, &id(B), ReviewMode::Automatic, face, late),
            Err(ChangeRefusal::ConsentExpired {
                expire_time: now + chrono::Duration::days(7)
            })
        );
        assert_eq!(expire(&pending, late).unwrap().to, BindingState::Expired);
        assert_eq!(expire(&pending, now), Err(ChangeRefusal::NotPendingConsent));
        let active = binding(BindingKind::FundsSharing, BindingState::Active);
        assert_eq!(
            accept(&active, &id(B), ReviewMode::Automatic, face, now),
            Err(ChangeRefusal::NotPendingConsent)
        );
    }
}
