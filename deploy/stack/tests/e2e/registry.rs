//! Bulk registry sync (BatchUpsertInsuredPersons): all or none, the single call's rules for
//! each record, its endings reported per record, and a retry answered as the first time.

use gongji_proto::binding::v1::{
    BatchUpsertInsuredPersonsRequest, BatchUpsertInsuredPersonsResponse, BindingState,
    GetBindingRequest, GetInsuredPersonRequest, InsuredPerson,
};
use tonic::{Code, Status};

use crate::{
    both_backends,
    fixtures::{self, CHILD, CHILD_NAME, EMPLOYEE, EMPLOYEE_NAME},
    support::{Backend, Clients, IN_WINDOW, TestEnv, assert_error},
};

both_backends!(
    a_batch_stores_every_record_and_reports_each_records_endings,
    a_batch_with_one_bad_record_stores_nothing,
    a_batch_retry_gets_the_first_answer,
);

const DOMAIN: &str = "binding.gongji";
/// The most records one batch takes, as the proto states.
const MAX_BATCH: usize = 500;

async fn batch(
    c: &mut Clients,
    request_id: &str,
    persons: Vec<InsuredPerson>,
) -> Result<BatchUpsertInsuredPersonsResponse, Status> {
    c.registry
        .batch_upsert_insured_persons(BatchUpsertInsuredPersonsRequest {
            request_id: request_id.into(),
            persons,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn stored(c: &mut Clients, id: &str) -> Result<InsuredPerson, Status> {
    c.registry
        .get_insured_person(GetInsuredPersonRequest {
            id_number: id.into(),
        })
        .await
        .map(|r| r.into_inner().person.expect("person"))
}

fn metadata(status: &Status, key: &str) -> Option<String> {
    tonic_types::StatusExt::get_error_details(status)
        .error_info()
        .and_then(|info| info.metadata.get(key).cloned())
}

/// `n` new residents of Ma'anshan, born on one day.
fn residents(n: u32) -> Vec<InsuredPerson> {
    (0..n)
        .map(|i| {
            fixtures::person(
                &fixtures::id_number("20100101", i),
                "王芳",
                None,
                Some("340500"),
            )
        })
        .collect()
}

async fn a_batch_stores_every_record_and_reports_each_records_endings(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "100.00").await;
    let newcomer = fixtures::id_number("20150601", 7);
    // The child moves to Jiangsu (out of scope: the binding ends), a newcomer arrives, and the
    // employee's record comes again unchanged.
    let answer = batch(
        &mut c,
        "sync-1",
        vec![
            fixtures::person(CHILD, CHILD_NAME, None, Some("320500")),
            fixtures::person(&newcomer, "张伟", None, Some("340500")),
            fixtures::person(EMPLOYEE, EMPLOYEE_NAME, Some("340500"), None),
        ],
    )
    .await
    .expect("batch");
    let results = &answer.results;
    assert_eq!(results.len(), 3, "one result per record");
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r.person.as_ref().expect("person").id_number.as_str())
        .collect();
    assert_eq!(
        ids,
        [CHILD, newcomer.as_str(), EMPLOYEE],
        "in request order"
    );
    let created: Vec<bool> = results.iter().map(|r| r.created).collect();
    assert_eq!(created, [false, true, false]);
    assert_eq!(
        results[0].ended_binding_ids,
        std::slice::from_ref(&binding.binding_id)
    );
    assert!(results[1].ended_binding_ids.is_empty());
    assert!(results[2].ended_binding_ids.is_empty());

    let child = stored(&mut c, CHILD).await.expect("child");
    assert_eq!(
        child.resident_enrollment.expect("resident").region_code,
        "320500"
    );
    stored(&mut c, &newcomer).await.expect("newcomer stored");
    let ended = c
        .bindings
        .get_binding(GetBindingRequest {
            binding_id: binding.binding_id.clone(),
        })
        .await
        .expect("binding")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(ended.state, BindingState::Ended as i32);
    let last = ended.history.last().expect("event");
    assert_eq!(
        (last.actor.as_str(), last.request_id.as_str()),
        ("system", "sync-1")
    );

    // A full batch, at the limit, is taken whole.
    let full = batch(&mut c, "sync-full", residents(MAX_BATCH as u32))
        .await
        .expect("a batch at the limit");
    assert_eq!(full.results.len(), MAX_BATCH);
    assert!(full.results.iter().all(|r| r.created));
    env.finish().await;
}

async fn a_batch_with_one_bad_record_stores_nothing(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::parent_and_child(&mut c).await;
    let good = residents(3);
    let moved = fixtures::person(CHILD, CHILD_NAME, None, Some("320500"));

    // A bad name in the middle: the error names its position, and nothing before it is kept.
    let mut bad_name = good.clone();
    bad_name.insert(1, moved.clone());
    bad_name[2].name = "王芳😀".into();
    let status = assert_error(
        batch(&mut c, "bad-name", bad_name).await,
        Code::InvalidArgument,
        "INVALID_NAME",
        DOMAIN,
    );
    assert_eq!(metadata(&status, "index").as_deref(), Some("2"));

    // A record without its enrollment status, and one with a bad ID number.
    let mut no_status = good.clone();
    if let Some(e) = no_status[2].resident_enrollment.as_mut() {
        e.status = 0;
    }
    let status = assert_error(
        batch(&mut c, "no-status", no_status).await,
        Code::InvalidArgument,
        "INVALID_ENROLLMENT_STATUS",
        DOMAIN,
    );
    assert_eq!(metadata(&status, "index").as_deref(), Some("2"));
    let mut bad_id = good.clone();
    bad_id[0].id_number = "340504201001010001".into();
    assert_error(
        batch(&mut c, "bad-id", bad_id).await,
        Code::InvalidArgument,
        "INVALID_ID_NUMBER",
        DOMAIN,
    );

    // One person twice.
    let mut twice = good.clone();
    twice.push(good[0].clone());
    let status = assert_error(
        batch(&mut c, "twice", twice).await,
        Code::InvalidArgument,
        "DUPLICATE_PERSON",
        DOMAIN,
    );
    assert_eq!(metadata(&status, "index").as_deref(), Some("3"));
    assert_eq!(metadata(&status, "first_index").as_deref(), Some("0"));

    // No records, and one record too many.
    for persons in [Vec::new(), residents(MAX_BATCH as u32 + 1)] {
        let size = persons.len().to_string();
        let status = assert_error(
            batch(&mut c, "size", persons).await,
            Code::InvalidArgument,
            "INVALID_BATCH_SIZE",
            DOMAIN,
        );
        assert_eq!(metadata(&status, "size"), Some(size));
        assert_eq!(
            metadata(&status, "limit"),
            Some(MAX_BATCH.to_string()),
            "the limit in metadata"
        );
    }

    // Nothing was stored by any refused batch: no new person, the child still in Ma'anshan.
    for p in &good {
        assert_error(
            stored(&mut c, &p.id_number).await,
            Code::NotFound,
            "PERSON_NOT_FOUND",
            DOMAIN,
        );
    }
    let child = stored(&mut c, CHILD).await.expect("child");
    assert_eq!(
        child.resident_enrollment.expect("resident").region_code,
        "340500"
    );
    // The request IDs of refused batches were not spent on them.
    let taken = batch(&mut c, "bad-name", good.clone())
        .await
        .expect("a refused batch's request ID is free");
    assert_eq!(taken.results.len(), good.len());
    env.finish().await;
}

async fn a_batch_retry_gets_the_first_answer(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let persons = residents(4);
    let first = batch(&mut c, "sync-retry", persons.clone())
        .await
        .expect("first");
    assert!(first.results.iter().all(|r| r.created));
    let again = batch(&mut c, "sync-retry", persons.clone())
        .await
        .expect("retry");
    assert_eq!(again, first, "the first answer, created flags and all");
    // The same records under a new request ID replace them: nothing is created.
    let replaced = batch(&mut c, "sync-next", persons.clone())
        .await
        .expect("replace");
    assert!(replaced.results.iter().all(|r| !r.created));
    // The first request ID with other content is refused.
    assert_error(
        batch(&mut c, "sync-retry", persons[..2].to_vec()).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
        DOMAIN,
    );
    env.finish().await;
}
