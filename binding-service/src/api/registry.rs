//! RegistryService handlers.

use chrono::NaiveDate;
use gongji_proto::binding::v1::{
    BatchUpsertInsuredPersonsRequest, BatchUpsertInsuredPersonsResponse, GetInsuredPersonRequest,
    GetInsuredPersonResponse, InsuredPerson, ResealPersonalDataRequest, ResealPersonalDataResponse,
    UpsertInsuredPersonRequest, UpsertInsuredPersonResponse,
    registry_service_server::RegistryService,
};
use gongji_shared::db::reseal::{RESEAL_BATCH, ResealStep};
use gongji_shared::rpc::auth::Caller;
use gongji_shared::rpc::command;
use gongji_shared::rpc::{ApiError, validate};
use tonic::{Request, Response, Status};

use super::{convert, failure, status};
use crate::{
    app::{App, Balances, BatchError, MAX_BATCH_RECORDS, RegistryBatch, RegistryRecord, Upserted},
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

/// The registry record of a wire person at `field` (e.g. `person`, `persons[3]`).
fn record(
    wire: Option<&InsuredPerson>,
    field: &str,
    today: NaiveDate,
) -> Result<RegistryRecord, ApiError> {
    let wire = wire
        .ok_or_else(|| ApiError::invalid_argument("INVALID_PERSON", field, "person is required"))?;
    Ok(RegistryRecord {
        id_number: validate::id_number(&wire.id_number, &format!("{field}.id_number"), today)?,
        name: validate::person_name(&wire.name, &format!("{field}.name"))?,
        employee: convert::enrollment_from_pb(
            wire.employee_enrollment.as_ref(),
            &format!("{field}.employee_enrollment"),
        )?,
        resident: convert::enrollment_from_pb(
            wire.resident_enrollment.as_ref(),
            &format!("{field}.resident_enrollment"),
        )?,
        resident_paid_years: convert::paid_years_from_pb(
            &wire.resident_paid_years,
            &format!("{field}.resident_paid_years"),
        )?,
    })
}

/// The batch of a BatchUpsertInsuredPersons request; a bad record's error names its position.
fn batch(
    request: &BatchUpsertInsuredPersonsRequest,
    today: NaiveDate,
) -> Result<RegistryBatch, ApiError> {
    validate::batch_size(
        request.persons.len(),
        MAX_BATCH_RECORDS,
        "persons",
        "records",
    )?;
    let records = request
        .persons
        .iter()
        .enumerate()
        .map(|(i, p)| {
            record(Some(p), &format!("persons[{i}]"), today)
                .map_err(|e| e.with_metadata("index", i))
        })
        .collect::<Result<Vec<_>, _>>()?;
    RegistryBatch::parse(records).map_err(|e| match e {
        BatchError::Size { len } => {
            validate::batch_size_error(len, MAX_BATCH_RECORDS, "persons", "records")
        }
        BatchError::Duplicate { first, second } => ApiError::invalid_argument(
            "DUPLICATE_PERSON",
            &format!("persons[{second}].id_number"),
            format!("records {first} and {second} have the same ID number"),
        )
        .with_metadata("index", second)
        .with_metadata("first_index", first),
    })
}

/// The wire answer for one stored record.
fn upserted_to_pb(u: &Upserted, caller: &Caller) -> UpsertInsuredPersonResponse {
    UpsertInsuredPersonResponse {
        person: Some(convert::person_to_pb(&u.person, caller)),
        created: u.created,
        ended_binding_ids: u.ended.iter().map(|b| b.binding_id.clone()).collect(),
    }
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
        let record = record(request.person.as_ref(), "person", self.app.today()).map_err(status)?;
        caller.require_party(&[&record.id_number]).map_err(status)?;
        let to_wire = move |u: &Upserted| upserted_to_pb(u, &caller);
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

    async fn batch_upsert_insured_persons(
        &self,
        request: Request<BatchUpsertInsuredPersonsRequest>,
    ) -> Result<Response<BatchUpsertInsuredPersonsResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let batch = batch(&request, self.app.today()).map_err(status)?;
        // A citizen channel may write only the record of the person it acts for.
        for record in batch.records() {
            caller.require_party(&[&record.id_number]).map_err(status)?;
        }
        let to_wire = move |all: &Vec<Upserted>| BatchUpsertInsuredPersonsResponse {
            results: all.iter().map(|u| upserted_to_pb(u, &caller)).collect(),
        };
        command(
            &self.app,
            &request_id,
            "BatchUpsertInsuredPersons",
            &request,
            to_wire,
            |c| self.app.upsert_persons(batch, c),
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

    async fn reseal_personal_data(
        &self,
        request: Request<ResealPersonalDataRequest>,
    ) -> Result<Response<ResealPersonalDataResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let batch = validate::batch_size_or_limit(
            request.batch_size,
            RESEAL_BATCH as usize,
            "batch_size",
            "values",
        )
        .map_err(status)? as i64;
        let to_wire = |step: &ResealStep| ResealPersonalDataResponse {
            rewritten_values: i64::try_from(step.rewritten).unwrap_or(i64::MAX),
            done: step.done,
            retired_key_versions: step.retired.clone(),
        };
        command(
            &self.app,
            &request_id,
            "ResealPersonalData",
            &request,
            to_wire,
            |c| self.app.reseal_personal_data(batch, c),
        )
        .await
    }
}
