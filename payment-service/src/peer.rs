//! The calls payment-service makes to binding-service: authorization before every debit
//! for someone else, and a health probe that takes the paying services out of rotation
//! while binding-service cannot be reached.

use std::time::Duration;

use gongji_proto::binding::v1::{
    CheckAuthorizationRequest, CheckAuthorizationResponse, GetInsuredPersonRequest, InsuredPerson,
    Purpose, binding_service_client::BindingServiceClient,
    registry_service_client::RegistryServiceClient,
};
use gongji_shared::{IdNumber, rpc::telemetry::TraceContextInterceptor};
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

/// binding-service could not answer: no money may move.
#[derive(Debug, thiserror::Error)]
#[error("binding-service unavailable: {0}")]
pub struct Unavailable(String);

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

    /// Asks, fresh, whether `authorizer` may pay for `beneficiary` for `purpose`. Never cached:
    /// a binding revoked a moment ago must not pay.
    pub async fn check(
        &self,
        authorizer: &IdNumber,
        beneficiary: &IdNumber,
        purpose: Purpose,
    ) -> Result<CheckAuthorizationResponse, Unavailable> {
        let request = CheckAuthorizationRequest {
            authorizer_id_number: authorizer.as_str().to_owned(),
            beneficiary_id_number: beneficiary.as_str().to_owned(),
            purpose: purpose as i32,
        };
        self.client
            .clone()
            .check_authorization(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| Unavailable(format!("{:?}: {}", status.code(), status.message())))
    }

    /// The person's registry record; `None` when the registry does not know them.
    pub async fn person(&self, id: &IdNumber) -> Result<Option<InsuredPerson>, Unavailable> {
        let request = GetInsuredPersonRequest {
            id_number: id.as_str().to_owned(),
        };
        match self.registry.clone().get_insured_person(request).await {
            Ok(response) => Ok(response.into_inner().person),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(Unavailable(format!(
                "{:?}: {}",
                status.code(),
                status.message()
            ))),
        }
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
