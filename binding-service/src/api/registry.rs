//! RegistryService handlers.

use chrono::NaiveDate;
use gongji_proto::binding::v1::{
    GetInsuredPersonRequest, GetInsuredPersonResponse, UpsertInsuredPersonRequest,
    UpsertInsuredPersonResponse, registry_service_server::RegistryService,
};
use gongji_shared::rpc::auth::Caller;
use gongji_shared::rpc::command;
use gongji_shared::rpc::{ApiError, validate};
use tonic::{Request, Response, Status};

use super::{convert, failure, status};
use crate::{
    app::{App, Balances, RegistryRecord, Upserted},
    store::Store,
};

/// The registry API.
pub struct RegistryApi<S, P> {
    app: App<S, P>,
}

impl<S, P> RegistryApi<S, P> {
    pub fn new(app: App<S, P>) -> Self {
        Self { app }
    }
}

/// The record of an UpsertInsuredPerson request.
fn record(
    request: &UpsertInsuredPersonRequest,
    today: NaiveDate,
) -> Result<RegistryRecord, Status> {
    let wire = request.person.as_ref().ok_or_else(|| {
        status(ApiError::invalid_argument(
            "INVALID_PERSON",
            "person",
            "person is required",
        ))
    })?;
    Ok(RegistryRecord {
        id_number: validate::id_number(&wire.id_number, "person.id_number", today)
            .map_err(status)?,
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
        resident_paid_years: convert::paid_years_from_pb(&wire.resident_paid_years)
            .map_err(status)?,
    })
}

#[tonic::async_trait]
impl<S: Store, P: Balances> RegistryService for RegistryApi<S, P> {
    async fn upsert_insured_person(
        &self,
        request: Request<UpsertInsuredPersonRequest>,
    ) -> Result<Response<UpsertInsuredPersonResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let record = record(&request, self.app.today())?;
        caller.require_party(&[&record.id_number]).map_err(status)?;
        let to_wire = move |u: &Upserted| UpsertInsuredPersonResponse {
            person: Some(convert::person_to_pb(&u.person, &caller)),
            created: u.created,
            ended_binding_ids: u.ended.iter().map(|b| b.binding_id.clone()).collect(),
        };
        command(
            &self.app,
            &request_id,
            "UpsertInsuredPerson",
            &request,
            to_wire,
            |c| self.app.upsert_person(record, c),
        )
        .await
    }

    async fn get_insured_person(
        &self,
        request: Request<GetInsuredPersonRequest>,
    ) -> Result<Response<GetInsuredPersonResponse>, Status> {
        let today = self.app.today();
        let caller = Caller::of(&request);
        let id = validate::id_number(&request.get_ref().id_number, "id_number", today)
            .map_err(status)?;
        // A citizen channel reads the record of the person it acts for, nobody else's.
        caller.require_party(&[&id]).map_err(status)?;
        let person = self.app.person(&id).await.map_err(failure)?;
        Ok(Response::new(GetInsuredPersonResponse {
            person: Some(convert::person_to_pb(&person, &caller)),
        }))
    }
}
