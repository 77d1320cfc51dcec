//! Demo data: one Ma'anshan family and two designated institutions, loaded through the public API with fixed request IDs,
//! so loading it again on every start changes nothing.

use gongji_proto::{
    binding::v1::{
        BindingKind, CreateBindingRequest, Enrollment, EnrollmentStatus, InsuredPerson,
        Relationship, UpsertInsuredPersonRequest, VerificationMethod,
        binding_service_client::BindingServiceClient,
        registry_service_client::RegistryServiceClient,
    },
    payment::v1::{
        BatchUpsertDesignatedInstitutionsRequest, Bucket, CreditAccountRequest,
        DesignatedInstitution, InstitutionKind, OpenAccountRequest,
        account_service_client::AccountServiceClient,
        medical_expense_service_client::MedicalExpenseServiceClient,
    },
};
use gongji_shared::rpc::{auth::ACTING_PERSON_HEADER, peer::PeerInterceptor};
use tonic::{Code, transport::Endpoint};

/// The demo employee (张伟, Ma'anshan, employee insurance, 1000.00 in prior-years).
pub const EMPLOYEE_ID: &str = "340504198503150017";
/// The demo employee's child (张小雨, Ma'anshan resident insurance), bound FUNDS_SHARING.
pub const CHILD_ID: &str = "340504201506010022";

fn person(id: &str, name: &str, employee: Option<&str>, resident: Option<&str>) -> InsuredPerson {
    let enrollment = |region: &str| Enrollment {
        region_code: region.to_owned(),
        status: EnrollmentStatus::Normal as i32,
    };
    InsuredPerson {
        id_number: id.to_owned(),
        name: name.to_owned(),
        employee_enrollment: employee.map(enrollment),
        resident_enrollment: resident.map(enrollment),
        update_time: None,
        resident_paid_years: Vec::new(),
    }
}

/// The designated institutions the core system syncs in the demo (and the tests): a hospital
/// and a pharmacy of Ma'anshan, designated since 2000.
pub fn designated_institutions() -> BatchUpsertDesignatedInstitutionsRequest {
    let institution = |code: &str, kind: InstitutionKind, name: &str| DesignatedInstitution {
        institution_code: code.to_owned(),
        institution_kind: kind as i32,
        region_code: "340500".to_owned(),
        name: name.to_owned(),
        designated_from: "2000-01-01".to_owned(),
        designated_until: String::new(),
    };
    BatchUpsertDesignatedInstitutionsRequest {
        request_id: "demo-institutions".to_owned(),
        institutions: vec![
            institution("H340500001", InstitutionKind::Hospital, "马鞍山市人民医院"),
            institution(
                "P340500009",
                InstitutionKind::Pharmacy,
                "马鞍山市民生大药房",
            ),
        ],
    }
}

/// Loads the demo family into a running stack: the registry, the account and the designated
/// institutions as the core system (`core`), the binding as a citizen channel acting for the
/// employee (`citizen`).
pub async fn load(
    binding_url: &str,
    payment_url: &str,
    core: PeerInterceptor,
    citizen: PeerInterceptor,
) -> anyhow::Result<()> {
    let connect = |url: &str| Endpoint::from_shared(url.to_owned()).map(|e| e.connect_lazy());
    let (binding, payment) = (connect(binding_url)?, connect(payment_url)?);
    let mut registry = RegistryServiceClient::with_interceptor(binding.clone(), core.clone());
    let mut bindings = BindingServiceClient::with_interceptor(binding, citizen);
    let mut accounts = AccountServiceClient::with_interceptor(payment.clone(), core.clone());
    let mut medical = MedicalExpenseServiceClient::with_interceptor(payment, core);
    done(
        medical
            .batch_upsert_designated_institutions(designated_institutions())
            .await,
    )?;

    for (request_id, p) in [
        (
            "demo-person-employee",
            person(EMPLOYEE_ID, "张伟", Some("340500"), None),
        ),
        (
            "demo-person-child",
            person(CHILD_ID, "张小雨", None, Some("340500")),
        ),
    ] {
        done(
            registry
                .upsert_insured_person(UpsertInsuredPersonRequest {
                    request_id: request_id.to_owned(),
                    person: Some(p),
                })
                .await,
        )?;
    }
    done(
        accounts
            .open_account(OpenAccountRequest {
                request_id: "demo-open-account".to_owned(),
                holder_id_number: EMPLOYEE_ID.to_owned(),
                region_code: "340500".to_owned(),
            })
            .await,
    )?;
    done(
        accounts
            .credit_account(CreditAccountRequest {
                request_id: "demo-credit".to_owned(),
                holder_id_number: EMPLOYEE_ID.to_owned(),
                amount: "1000.00".to_owned(),
                bucket: Bucket::PriorYears as i32,
                memo: "demo: prior-years surplus".to_owned(),
            })
            .await,
    )?;
    let mut create = tonic::Request::new(CreateBindingRequest {
        request_id: "demo-binding".to_owned(),
        authorizer_id_number: EMPLOYEE_ID.to_owned(),
        beneficiary_id_number: CHILD_ID.to_owned(),
        beneficiary_name: "张小雨".to_owned(),
        relationship: Relationship::Child as i32,
        kind: BindingKind::FundsSharing as i32,
        verification_method: VerificationMethod::FaceRecognition as i32,
    });
    create
        .metadata_mut()
        .insert(ACTING_PERSON_HEADER, EMPLOYEE_ID.parse()?);
    done(bindings.create_binding(create).await)
}

/// Whether a step of the demo is done: now, or on an earlier start (the account or the
/// binding exists, loaded under another policy day; or the first answer is past its
/// retention window, after a start with an earlier clock). Anything else is an error.
fn done<T>(result: Result<T, tonic::Status>) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(status) if status.code() == Code::AlreadyExists => Ok(()),
        Err(status)
            if status.code() == Code::FailedPrecondition
                && tonic_types::StatusExt::get_error_details(&status)
                    .error_info()
                    .is_some_and(|info| info.reason == "REQUEST_ID_EXPIRED") =>
        {
            Ok(())
        }
        Err(status) => Err(status.into()),
    }
}
