//! RegistryService handlers.

use gongji_proto::binding::v1::{
    GetInsuredPersonRequest, GetInsuredPersonResponse, UpsertInsuredPersonRequest,
    UpsertInsuredPersonResponse, registry_service_server::RegistryService,
};
use gongji_shared::rpc::{ApiError, validate};
use prost::Message;
use tonic::{Request, Response, Status};

use super::{Context, convert, replay, status, store_failure};
use crate::{
    domain::{Binding, Person, lifecycle},
    store::{Idempotency, Store, StoreError},
};

/// The registry API.
pub struct RegistryApi<S> {
    ctx: Context<S>,
}

impl<S> RegistryApi<S> {
    pub fn new(ctx: Context<S>) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl<S: Store> RegistryService for RegistryApi<S> {
    async fn upsert_insured_person(
        &self,
        request: Request<UpsertInsuredPersonRequest>,
    ) -> Result<Response<UpsertInsuredPersonResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let wire = request.person.clone().ok_or_else(|| {
            status(ApiError::invalid_argument(
                "INVALID_PERSON",
                "person",
                "person is required",
            ))
        })?;
        let person = Person {
            id_number: validate::id_number(&wire.id_number, "person.id_number").map_err(status)?,
            name: validate::person_name(&wire.name, "person.name").map_err(status)?,
            employee: convert::enrollment_from_pb(
                wire.employee_enrollment.as_ref(),
                "person.employee_enrollment",
            )
            .map_err(status)?,
            resident: convert::enrollment_from_pb(
                wire.resident_enrollment.as_ref(),
                "person.resident_enrollment",
            )
            .map_err(status)?,
            update_time: self.ctx.clock.now(),
        };
        let idempotency = Idempotency::of(request_id.as_str(), "UpsertInsuredPerson", &request);
        if let Some(first) = replay(&self.ctx.store, &idempotency).await? {
            return Ok(Response::new(first));
        }
        let rules = self.ctx.policy.rules_on(self.ctx.clock.today());
        let province = self.ctx.policy.province_code();
        let decide = |live: &[Binding]| lifecycle::endings(&person, live, rules, province);
        let respond = |created: bool, ended: &[Binding]| {
            UpsertInsuredPersonResponse {
                person: Some(convert::person_to_pb(&person)),
                created,
                ended_binding_ids: ended.iter().map(|b| b.binding_id.clone()).collect(),
            }
            .encode_to_vec()
        };
        let bytes = match self
            .ctx
            .store
            .upsert_person(&person, &idempotency, decide, respond)
            .await
        {
            Ok(bytes) => bytes,
            // A concurrent retry stored first: answer what it stored.
            Err(StoreError::RequestIdTaken) => {
                return replay(&self.ctx.store, &idempotency)
                    .await?
                    .map(Response::new)
                    .ok_or_else(|| {
                        status(ApiError::aborted(
                            "CONCURRENT_UPDATE",
                            "retry with the same request_id",
                        ))
                    });
            }
            Err(e) => return Err(store_failure(e)),
        };
        let response = UpsertInsuredPersonResponse::decode(bytes.as_slice())
            .map_err(|_| status(ApiError::internal()))?;
        tracing::info!(
            id_number = %person.id_number,
            name = %person.name,
            ended_bindings = response.ended_binding_ids.len(),
            "registry record stored"
        );
        if !response.ended_binding_ids.is_empty() {
            self.ctx.events.notify_waiters();
        }
        Ok(Response::new(response))
    }

    async fn get_insured_person(
        &self,
        request: Request<GetInsuredPersonRequest>,
    ) -> Result<Response<GetInsuredPersonResponse>, Status> {
        let id = validate::id_number(&request.get_ref().id_number, "id_number").map_err(status)?;
        let person = self
            .ctx
            .store
            .person(&id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| {
                status(
                    ApiError::not_found(
                        "PERSON_NOT_FOUND",
                        "no registry record for this ID number",
                    )
                    .with_metadata("id_number", id.masked()),
                )
            })?;
        Ok(Response::new(GetInsuredPersonResponse {
            person: Some(convert::person_to_pb(&person)),
        }))
    }
}
