//! The calls payment-service makes to binding-service: the registry and authorization
//! before every debit for someone else (the use cases' [`Registry`], answered in
//! payment-service's own domain types), and a health probe that takes the paying services
//! out of rotation while binding-service cannot be reached.

use std::time::Duration;

use crate::{
    app::{BoundBeneficiary, MAX_BOUND_BENEFICIARIES, PeerError, Registry, UseRequest},
    domain::{
        authorization::{Authorization, Denial, Enrollment, InsuredPerson},
        fence::RecordedUse,
    },
};
use gongji_proto::binding::v1::{
    self as pb, AuthorizeUseRequest, CheckAuthorizationRequest, CheckAuthorizationResponse,
    EnrollmentStatus, GetInsuredPersonRequest, ListBindingUsesRequest, ListBindingsRequest,
    binding_service_client::BindingServiceClient, registry_service_client::RegistryServiceClient,
};
use gongji_shared::{
    CoverageYear, IdNumber, Money, RegionCode,
    policy::Purpose,
    rpc::peer::{self, PeerChannel, PeerInterceptor},
};
use tonic::{
    codegen::InterceptedService,
    transport::{Channel, Endpoint},
};
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_check_response, health_client::HealthClient},
    server::HealthReporter,
};

/// The services that move money for someone else and so depend on binding-service.
pub const DEPENDENT_SERVICES: [&str; 3] = [
    "gongji.payment.v1.PremiumService",
    "gongji.payment.v1.MedicalExpenseService",
    "gongji.payment.v1.WalletService",
];
const BINDING_SERVICE: &str = "gongji.binding.v1.BindingService";

/// A lazily connected client of binding-service.
#[derive(Clone)]
pub struct BindingPeer {
    client: BindingServiceClient<InterceptedService<PeerChannel, PeerInterceptor>>,
    registry: RegistryServiceClient<InterceptedService<PeerChannel, PeerInterceptor>>,
    health: HealthClient<Channel>,
}

impl BindingPeer {
    /// Builds the client; connects on first use. Every call has `timeout_ms` as deadline.
    pub fn new(
        addr: &str,
        timeout_ms: u64,
        connect_timeout_ms: u64,
        credentials: PeerInterceptor,
        tls: Option<tonic::transport::ClientTlsConfig>,
        metrics: Option<gongji_shared::metrics::Metrics>,
    ) -> Result<Self, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(addr.to_owned())?
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(connect_timeout_ms))
            .tcp_nodelay(true);
        let channel = gongji_shared::rpc::tls::with_tls(endpoint, tls)?.connect_lazy();
        let measured = peer::measured(channel.clone(), metrics);
        Ok(Self {
            client: BindingServiceClient::with_interceptor(measured.clone(), credentials.clone()),
            registry: RegistryServiceClient::with_interceptor(measured, credentials),
            health: HealthClient::new(channel),
        })
    }

    /// Whether binding-service says its BindingService is SERVING.
    async fn serving(&self) -> bool {
        let request = HealthCheckRequest {
            service: BINDING_SERVICE.to_owned(),
        };
        matches!(
            self.health.clone().check(request).await,
            Ok(r) if r.get_ref().status == health_check_response::ServingStatus::Serving as i32
        )
    }

    /// Probes binding-service every `interval_ms` and mirrors its reachability on the
    /// dependent services' health, forever. The server's overall status is left alone, so
    /// one peer's outage does not take every pod out of rotation.
    pub async fn mirror_health(self, reporter: HealthReporter, interval_ms: u64) {
        let mut last = None;
        let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let serving = self.serving().await;
            if last != Some(serving) {
                let status = if serving {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                tracing::info!(serving, "binding-service reachability changed");
                for service in DEPENDENT_SERVICES {
                    reporter.set_service_status(service, status).await;
                }
                last = Some(serving);
            }
        }
    }
}

impl Registry for BindingPeer {
    /// Never cached: a binding revoked a moment ago must not pay.
    async fn authorize(
        &self,
        authorizer: &IdNumber,
        beneficiary: &IdNumber,
        purpose: Purpose,
    ) -> Result<Authorization, PeerError> {
        let request = CheckAuthorizationRequest {
            authorizer_id_number: authorizer.as_str().to_owned(),
            beneficiary_id_number: beneficiary.as_str().to_owned(),
            purpose: purpose_to_pb(purpose) as i32,
        };
        let answer = self
            .client
            .clone()
            .check_authorization(request)
            .await
            .map_err(unavailable)?;
        authorization(answer.into_inner())
    }

    /// The movement ID is the request ID too: asking again for the same debit gets the
    /// answer recorded the first time.
    async fn authorize_use(&self, use_request: &UseRequest) -> Result<Authorization, PeerError> {
        let request = AuthorizeUseRequest {
            request_id: use_request.movement_id.clone(),
            authorizer_id_number: use_request.authorizer.as_str().to_owned(),
            beneficiary_id_number: use_request.beneficiary.as_str().to_owned(),
            purpose: purpose_to_pb(use_request.purpose) as i32,
            amount: use_request.amount.to_string(),
            movement_id: use_request.movement_id.clone(),
        };
        let answer = self
            .client
            .clone()
            .authorize_use(request)
            .await
            .map_err(unavailable)?
            .into_inner();
        let decision = authorization(answer.authorization.unwrap_or_default())?;
        // A yes counts only with the use recorded for this very debit and amount.
        if decision.is_authorized() {
            let recorded = answer
                .r#use
                .as_ref()
                .map(recorded_use)
                .transpose()?
                .ok_or_else(|| PeerError::Malformed("a yes without a recorded use".to_owned()))?;
            if recorded.movement_id != use_request.movement_id
                || recorded.amount != use_request.amount
                || recorded.binding_id != decision.binding_id
            {
                return Err(PeerError::Malformed(
                    "a use recorded for another debit".to_owned(),
                ));
            }
        }
        Ok(decision)
    }

    async fn binding_uses(
        &self,
        binding_id: &str,
        page_token: &str,
    ) -> Result<Option<(Vec<RecordedUse>, String)>, PeerError> {
        let request = ListBindingUsesRequest {
            binding_id: binding_id.to_owned(),
            page_size: MAX_USES_PAGE,
            page_token: page_token.to_owned(),
        };
        let page = match self.client.clone().list_binding_uses(request).await {
            Ok(page) => page.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(None),
            Err(status) => return Err(unavailable(status)),
        };
        let uses = page
            .uses
            .iter()
            .map(recorded_use)
            .collect::<Result<_, _>>()?;
        Ok(Some((uses, page.next_page_token)))
    }

    async fn bound_beneficiaries(
        &self,
        authorizer: &IdNumber,
    ) -> Result<Vec<BoundBeneficiary>, PeerError> {
        let mut bound = Vec::new();
        let mut page_token = String::new();
        // Pages of 100: the limit is reached within two.
        for _ in 0..=MAX_BOUND_BENEFICIARIES / 100 {
            let request = ListBindingsRequest {
                authorizer_id_number: authorizer.as_str().to_owned(),
                beneficiary_id_number: String::new(),
                states: vec![pb::BindingState::Active as i32],
                page_size: 100,
                page_token,
            };
            let page = self
                .client
                .clone()
                .list_bindings(request)
                .await
                .map_err(unavailable)?
                .into_inner();
            for b in page
                .bindings
                .iter()
                .filter(|b| b.kind == pb::BindingKind::FundsSharing as i32)
            {
                bound.push(BoundBeneficiary {
                    binding_id: b.binding_id.clone(),
                    beneficiary: IdNumber::parse(&b.beneficiary_id_number).map_err(|_| {
                        PeerError::Malformed("a binding without a valid beneficiary".to_owned())
                    })?,
                    // For display only: a masked name is no name.
                    name: gongji_shared::PersonName::parse(&b.beneficiary_name).ok(),
                });
            }
            page_token = page.next_page_token;
            if page_token.is_empty() || bound.len() >= MAX_BOUND_BENEFICIARIES {
                break;
            }
        }
        bound.truncate(MAX_BOUND_BENEFICIARIES);
        Ok(bound)
    }

    async fn person(&self, id: &IdNumber) -> Result<Option<InsuredPerson>, PeerError> {
        let request = GetInsuredPersonRequest {
            id_number: id.as_str().to_owned(),
        };
        match self.registry.clone().get_insured_person(request).await {
            Ok(response) => response
                .into_inner()
                .person
                .map(|p| insured_person(&p))
                .transpose(),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(unavailable(status)),
        }
    }
}

/// The largest page binding-service's ListBindingUses gives.
const MAX_USES_PAGE: i32 = 100;

fn purpose_to_pb(purpose: Purpose) -> pb::Purpose {
    match purpose {
        Purpose::Premium => pb::Purpose::Premium,
        Purpose::MedicalExpense => pb::Purpose::MedicalExpense,
        Purpose::FamilyWallet => pb::Purpose::FamilyWallet,
    }
}

fn recorded_use(u: &pb::BindingUse) -> Result<RecordedUse, PeerError> {
    Ok(RecordedUse {
        movement_id: u.movement_id.clone(),
        binding_id: u.binding_id.clone(),
        binding_version: u.binding_version,
        amount: Money::parse(&u.amount)
            .map_err(|_| PeerError::Malformed("a use without a valid amount".to_owned()))?,
    })
}

/// An error answer: an outage, or a failure that is no outage (logged with the status).
fn unavailable(status: tonic::Status) -> PeerError {
    let what = format!("{:?}: {}", status.code(), status.message());
    if gongji_shared::rpc::is_outage(status.code()) {
        PeerError::Unavailable(what)
    } else {
        PeerError::Failed(what)
    }
}

/// binding-service's answer in this service's terms. A "no" without a reason is still a
/// no: the answer fails closed.
fn authorization(answer: CheckAuthorizationResponse) -> Result<Authorization, PeerError> {
    let mut denials: Vec<Denial> = answer
        .denials
        .into_iter()
        .map(|d| Denial {
            reason: d.reason,
            message: d.message,
        })
        .collect();
    if !answer.authorized && denials.is_empty() {
        denials.push(Denial {
            reason: "NOT_AUTHORIZED".to_owned(),
            message: "binding-service gave no reason".to_owned(),
        });
    }
    Ok(Authorization {
        denials,
        binding_id: answer.binding_id,
        binding_version: answer.binding_version,
        authorizer_region: RegionCode::parse(&answer.authorizer_region_code).ok(),
        beneficiary_region: RegionCode::parse(&answer.beneficiary_region_code).ok(),
        beneficiary: answer
            .beneficiary
            .as_ref()
            .map(insured_person)
            .transpose()?,
        limits: gongji_shared::rpc::limits::limits_from_pb(&answer.limits)
            .map_err(|e| PeerError::Malformed(format!("limits: {e}")))?,
    })
}

fn insured_person(person: &pb::InsuredPerson) -> Result<InsuredPerson, PeerError> {
    Ok(InsuredPerson {
        // For display only: a masked name (a peer without sees_names) is no name.
        name: gongji_shared::PersonName::parse(&person.name).ok(),
        employee: person
            .employee_enrollment
            .as_ref()
            .map(enrollment)
            .transpose()?,
        resident: person
            .resident_enrollment
            .as_ref()
            .map(enrollment)
            .transpose()?,
        paid_years: person
            .resident_paid_years
            .iter()
            .map(|y| {
                CoverageYear::parse(*y)
                    .map_err(|_| PeerError::Malformed("a paid year out of range".to_owned()))
            })
            .collect::<Result<_, _>>()?,
    })
}

fn enrollment(e: &pb::Enrollment) -> Result<Enrollment, PeerError> {
    Ok(Enrollment {
        region: RegionCode::parse(&e.region_code)
            .map_err(|_| PeerError::Malformed("an enrollment without a valid region".to_owned()))?,
        terminated: e.status == EnrollmentStatus::Terminated as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_outage_is_unavailable() {
        assert!(matches!(
            unavailable(tonic::Status::unavailable("down")),
            PeerError::Unavailable(_)
        ));
        assert!(matches!(
            unavailable(tonic::Status::deadline_exceeded("slow")),
            PeerError::Unavailable(_)
        ));
        assert!(matches!(
            unavailable(tonic::Status::invalid_argument("bad")),
            PeerError::Failed(_)
        ));
        assert!(matches!(
            unavailable(tonic::Status::internal("bug")),
            PeerError::Failed(_)
        ));
    }

    #[test]
    fn a_no_without_a_reason_is_still_a_no() {
        let answer = CheckAuthorizationResponse {
            authorized: false,
            ..Default::default()
        };
        let authorization = authorization(answer).unwrap();
        assert!(!authorization.is_authorized());
        assert_eq!(authorization.denials[0].reason, "NOT_AUTHORIZED");
    }

    #[test]
    fn regions_and_enrollments_become_domain_types() {
        let answer = CheckAuthorizationResponse {
            authorized: true,
            binding_id: "b-1".to_owned(),
            binding_version: 3,
            beneficiary_region_code: "340500".to_owned(),
            beneficiary: Some(pb::InsuredPerson {
                employee_enrollment: Some(pb::Enrollment {
                    region_code: "340500".to_owned(),
                    status: EnrollmentStatus::Terminated as i32,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let authorization = authorization(answer).unwrap();
        assert!(authorization.is_authorized());
        assert_eq!(authorization.authorizer_region, None);
        assert_eq!(authorization.beneficiary_region.unwrap().as_str(), "340500");
        let person = authorization.beneficiary.unwrap();
        assert!(person.live_employee().is_none());
    }

    #[test]
    fn an_enrollment_without_a_valid_region_is_malformed() {
        let person = pb::InsuredPerson {
            resident_enrollment: Some(pb::Enrollment {
                region_code: "bad".to_owned(),
                status: EnrollmentStatus::Normal as i32,
            }),
            ..Default::default()
        };
        assert!(matches!(
            insured_person(&person),
            Err(PeerError::Malformed(_))
        ));
    }
}
