//! The calls payment-service makes to binding-service: the registry and authorization
//! before every debit for someone else (the use cases' [`Registry`], answered in
//! payment-service's own domain types), and a health probe that takes the paying services
//! out of rotation while binding-service cannot be reached.

use std::time::Duration;

use crate::{
    app::{PeerError, Registry},
    domain::authorization::{Authorization, Denial, Enrollment, InsuredPerson},
};
use gongji_proto::binding::v1::{
    self as pb, CheckAuthorizationRequest, CheckAuthorizationResponse, EnrollmentStatus,
    GetInsuredPersonRequest, binding_service_client::BindingServiceClient,
    registry_service_client::RegistryServiceClient,
};
use gongji_shared::{
    CoverageYear, IdNumber, RegionCode, policy::Purpose, rpc::telemetry::TraceContextInterceptor,
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
pub const DEPENDENT_SERVICES: [&str; 2] = [
    "gongji.payment.v1.PremiumService",
    "gongji.payment.v1.MedicalExpenseService",
];
const BINDING_SERVICE: &str = "gongji.binding.v1.BindingService";

/// A lazily connected client of binding-service.
#[derive(Clone)]
pub struct BindingPeer {
    client: BindingServiceClient<InterceptedService<Channel, TraceContextInterceptor>>,
    registry: RegistryServiceClient<InterceptedService<Channel, TraceContextInterceptor>>,
    health: HealthClient<Channel>,
}

impl BindingPeer {
    /// Builds the client; connects on first use. Every call has `timeout_ms` as deadline.
    pub fn new(
        addr: &str,
        timeout_ms: u64,
        connect_timeout_ms: u64,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(addr.to_owned())?
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(connect_timeout_ms))
            .connect_lazy();
        Ok(Self {
            client: BindingServiceClient::with_interceptor(
                channel.clone(),
                TraceContextInterceptor,
            ),
            registry: RegistryServiceClient::with_interceptor(
                channel.clone(),
                TraceContextInterceptor,
            ),
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
            purpose: match purpose {
                Purpose::Premium => pb::Purpose::Premium,
                Purpose::MedicalExpense => pb::Purpose::MedicalExpense,
            } as i32,
        };
        let answer = self
            .client
            .clone()
            .check_authorization(request)
            .await
            .map_err(unavailable)?;
        authorization(answer.into_inner())
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
    })
}

fn insured_person(person: &pb::InsuredPerson) -> Result<InsuredPerson, PeerError> {
    Ok(InsuredPerson {
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
