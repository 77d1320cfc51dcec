//! BindingService handlers.

use std::pin::Pin;

use futures::Stream;
use gongji_proto::binding::v1::{
    self as pb, ApproveBindingRequest, ApproveBindingResponse, CheckAuthorizationRequest,
    CheckAuthorizationResponse, CreateBindingRequest, CreateBindingResponse, GetBindingRequest,
    GetBindingResponse, ListBindingsRequest, ListBindingsResponse, RejectBindingRequest,
    RejectBindingResponse, RevokeBindingRequest, RevokeBindingResponse, WatchBindingEventsRequest,
    WatchBindingEventsResponse, binding_service_server::BindingService,
};
use gongji_shared::{
    Money,
    rpc::{ApiError, Violation, validate},
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::{Context, convert, replay, status, store_failure};
use crate::{
    domain::{
        Binding, BindingEvent, BindingKind, BindingState,
        rules::{self, AuthorizationFacts, CreateFacts, Failure},
    },
    store::{Idempotency, Store, StoreError},
};

/// Longest binding ID accepted (ours are UUIDs).
const MAX_BINDING_ID_LEN: usize = 64;

/// The binding API.
pub struct BindingApi<S> {
    ctx: Context<S>,
}

impl<S> BindingApi<S> {
    pub fn new(ctx: Context<S>) -> Self {
        Self { ctx }
    }
}

fn binding_id(value: &str) -> Result<String, Status> {
    if value.is_empty()
        || value.len() > MAX_BINDING_ID_LEN
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(status(ApiError::invalid_argument(
            "INVALID_BINDING_ID",
            "binding_id",
            format!("binding_id has 1 to {MAX_BINDING_ID_LEN} printable ASCII characters"),
        )));
    }
    Ok(value.to_owned())
}

/// The error for a refused application: the first failure is the reason, every failure a
/// violation. A duplicate is ALREADY_EXISTS, every other rule FAILED_PRECONDITION.
fn refusal(failures: &[Failure]) -> Status {
    let first = failures[0];
    let message = format!("the binding was refused: {}", first.description());
    let mut error = if failures.contains(&Failure::BindingAlreadyExists) {
        ApiError::already_exists(Failure::BindingAlreadyExists.reason(), message)
    } else {
        ApiError::failed_precondition(first.reason(), message)
    };
    error = error.with_metadata(
        "failed_rules",
        failures
            .iter()
            .map(|f| f.reason())
            .collect::<Vec<_>>()
            .join(","),
    );
    for f in failures {
        error = error.with_violation(Violation {
            kind: f.reason().to_owned(),
            subject: f.subject().to_owned(),
            description: f.description().to_owned(),
        });
    }
    status(error)
}

type EventStream = Pin<Box<dyn Stream<Item = Result<WatchBindingEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<S: Store> BindingService for BindingApi<S> {
    async fn create_binding(
        &self,
        request: Request<CreateBindingRequest>,
    ) -> Result<Response<CreateBindingResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let authorizer_id =
            validate::id_number(&request.authorizer_id_number, "authorizer_id_number")
                .map_err(status)?;
        let beneficiary_id =
            validate::id_number(&request.beneficiary_id_number, "beneficiary_id_number")
                .map_err(status)?;
        let beneficiary_name =
            validate::person_name(&request.beneficiary_name, "beneficiary_name").map_err(status)?;
        let relationship = convert::relationship_from_pb(request.relationship).map_err(status)?;
        let kind = convert::kind_from_pb(request.kind).map_err(status)?;
        let idempotency = Idempotency::of(request_id.as_str(), "CreateBinding", &request);
        if let Some(first) = replay(&self.ctx.store, &idempotency).await? {
            return Ok(Response::new(first));
        }

        let store = &self.ctx.store;
        let now = self.ctx.clock.now();
        let rules = self.ctx.policy.rules_on(self.ctx.clock.today());
        let authorizer = store.person(&authorizer_id).await.map_err(store_failure)?;
        let beneficiary = store.person(&beneficiary_id).await.map_err(store_failure)?;
        let live = store
            .live_bindings_of(&authorizer_id)
            .await
            .map_err(store_failure)?;
        let usable = match kind {
            BindingKind::FundsSharing => Some(self.ctx.payment.usable_balance(&authorizer_id).await.map_err(|e| {
                tracing::warn!(error = %e, "payment-service did not say the balance; nothing stored");
                status(
                    ApiError::unavailable("DEPENDENCY_UNAVAILABLE", "payment-service could not be asked for the balance; retry later")
                        .with_metadata("dependency", "payment-service"),
                )
            })?),
            BindingKind::Proxy => None,
        };
        let failures = rules::check_create(&CreateFacts {
            rules,
            province: self.ctx.policy.province_code(),
            authorizer_id: &authorizer_id,
            authorizer: authorizer.as_ref(),
            authorizer_usable_fen: usable.map(Money::fen),
            beneficiary_id: &beneficiary_id,
            beneficiary: beneficiary.as_ref(),
            beneficiary_name: &beneficiary_name,
            relationship,
            kind,
            authorizer_live_bindings: &live,
        });
        if !failures.is_empty() {
            tracing::info!(authorizer = %authorizer_id, beneficiary = %beneficiary_id, ?failures, "binding refused");
            return Err(refusal(&failures));
        }
        let Some(rules) = rules else {
            return Err(refusal(&[Failure::NoPolicyInForce]));
        };
        let state = match rules.review_mode {
            gongji_shared::policy::ReviewMode::Automatic => BindingState::Active,
            gongji_shared::policy::ReviewMode::Manual => BindingState::PendingReview,
        };
        let binding = Binding {
            binding_id: uuid::Uuid::new_v4().to_string(),
            authorizer: authorizer_id,
            beneficiary: beneficiary_id,
            beneficiary_name,
            relationship,
            kind,
            state,
            version: 1,
            create_time: now,
            update_time: now,
            state_reason: String::new(),
        };
        let event = BindingEvent {
            sequence: 0,
            binding_id: binding.binding_id.clone(),
            from_state: None,
            to_state: state,
            actor: "authorizer".to_owned(),
            reason: "application".to_owned(),
            request_id: idempotency.request_id.clone(),
            event_time: now,
            binding_version: 1,
        };
        let response = CreateBindingResponse {
            binding: Some(convert::binding_to_pb(&binding, &[])),
        };
        match store
            .insert_binding(&binding, &event, &idempotency, &response.encode_to_vec())
            .await
        {
            Ok(()) => {}
            Err(StoreError::LiveBindingExists) => {
                return Err(refusal(&[Failure::BindingAlreadyExists]));
            }
            Err(StoreError::RequestIdTaken) => {
                return replay(store, &idempotency)
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
        }
        tracing::info!(
            binding_id = %binding.binding_id,
            authorizer = %binding.authorizer,
            beneficiary = %binding.beneficiary,
            state = binding.state.as_str(),
            "binding created"
        );
        Ok(Response::new(response))
    }

    async fn get_binding(
        &self,
        request: Request<GetBindingRequest>,
    ) -> Result<Response<GetBindingResponse>, Status> {
        let id = binding_id(&request.get_ref().binding_id)?;
        let (binding, history) = self
            .ctx
            .store
            .binding(&id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| {
                status(
                    ApiError::not_found("BINDING_NOT_FOUND", "no binding with this ID")
                        .with_metadata("binding_id", &id),
                )
            })?;
        Ok(Response::new(GetBindingResponse {
            binding: Some(convert::binding_to_pb(&binding, &history)),
        }))
    }

    async fn list_bindings(
        &self,
        request: Request<ListBindingsRequest>,
    ) -> Result<Response<ListBindingsResponse>, Status> {
        let r = request.get_ref();
        match (
            r.authorizer_id_number.is_empty(),
            r.beneficiary_id_number.is_empty(),
        ) {
            (false, true) => {
                validate::id_number(&r.authorizer_id_number, "authorizer_id_number").map(drop)
            }
            (true, false) => {
                validate::id_number(&r.beneficiary_id_number, "beneficiary_id_number").map(drop)
            }
            _ => Err(ApiError::invalid_argument(
                "INVALID_FILTER",
                "authorizer_id_number",
                "set exactly one of authorizer_id_number and beneficiary_id_number",
            )),
        }
        .map_err(status)?;
        for state in &r.states {
            convert::state_from_pb(*state).map_err(status)?;
        }
        validate::page_size(r.page_size).map_err(status)?;
        Err(status(ApiError::unimplemented("ListBindings")))
    }

    async fn revoke_binding(
        &self,
        request: Request<RevokeBindingRequest>,
    ) -> Result<Response<RevokeBindingResponse>, Status> {
        let r = request.get_ref();
        validate::request_id(&r.request_id).map_err(status)?;
        binding_id(&r.binding_id)?;
        convert::party_from_pb(r.revoked_by).map_err(status)?;
        validate::id_number(&r.requester_id_number, "requester_id_number").map_err(status)?;
        validate::reason(&r.reason, "reason").map_err(status)?;
        Err(status(ApiError::unimplemented("RevokeBinding")))
    }

    async fn approve_binding(
        &self,
        request: Request<ApproveBindingRequest>,
    ) -> Result<Response<ApproveBindingResponse>, Status> {
        let r = request.get_ref();
        validate::request_id(&r.request_id).map_err(status)?;
        binding_id(&r.binding_id)?;
        reviewer(&r.reviewer)?;
        Err(status(ApiError::unimplemented("ApproveBinding")))
    }

    async fn reject_binding(
        &self,
        request: Request<RejectBindingRequest>,
    ) -> Result<Response<RejectBindingResponse>, Status> {
        let r = request.get_ref();
        validate::request_id(&r.request_id).map_err(status)?;
        binding_id(&r.binding_id)?;
        reviewer(&r.reviewer)?;
        validate::reason(&r.reason, "reason").map_err(status)?;
        Err(status(ApiError::unimplemented("RejectBinding")))
    }

    async fn check_authorization(
        &self,
        request: Request<CheckAuthorizationRequest>,
    ) -> Result<Response<CheckAuthorizationResponse>, Status> {
        let r = request.get_ref();
        let authorizer_id =
            validate::id_number(&r.authorizer_id_number, "authorizer_id_number").map_err(status)?;
        let beneficiary_id = validate::id_number(&r.beneficiary_id_number, "beneficiary_id_number")
            .map_err(status)?;
        let purpose = convert::purpose_from_pb(r.purpose).map_err(status)?;
        let store = &self.ctx.store;
        let authorizer = store.person(&authorizer_id).await.map_err(store_failure)?;
        let beneficiary = store.person(&beneficiary_id).await.map_err(store_failure)?;
        let binding = store
            .pair_binding(&authorizer_id, &beneficiary_id, BindingKind::FundsSharing)
            .await
            .map_err(store_failure)?;
        let failures = rules::check_authorization(&AuthorizationFacts {
            rules: self.ctx.policy.rules_on(self.ctx.clock.today()),
            province: self.ctx.policy.province_code(),
            purpose,
            authorizer: authorizer.as_ref(),
            beneficiary: beneficiary.as_ref(),
            binding: binding.as_ref(),
        });
        tracing::info!(
            authorizer = %authorizer_id,
            beneficiary = %beneficiary_id,
            purpose = purpose.as_str(),
            authorized = failures.is_empty(),
            ?failures,
            "authorization checked"
        );
        Ok(Response::new(CheckAuthorizationResponse {
            authorized: failures.is_empty(),
            denials: failures
                .iter()
                .map(|f| pb::Denial {
                    reason: f.reason().to_owned(),
                    message: f.description().to_owned(),
                })
                .collect(),
            binding_id: binding
                .as_ref()
                .map(|b| b.binding_id.clone())
                .unwrap_or_default(),
            binding_version: binding.as_ref().map_or(0, |b| b.version),
            authorizer_region_code: authorizer
                .as_ref()
                .and_then(|p| p.employee.as_ref())
                .map(|e| e.region.as_str().to_owned())
                .unwrap_or_default(),
            beneficiary_region_code: beneficiary
                .as_ref()
                .and_then(|p| p.insured_region())
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            authorizer: authorizer.as_ref().map(convert::person_to_pb),
            beneficiary: beneficiary.as_ref().map(convert::person_to_pb),
        }))
    }

    type WatchBindingEventsStream = EventStream;

    async fn watch_binding_events(
        &self,
        request: Request<WatchBindingEventsRequest>,
    ) -> Result<Response<Self::WatchBindingEventsStream>, Status> {
        if request.get_ref().after_sequence < 0 {
            return Err(status(
                ApiError::invalid_argument(
                    "INVALID_CURSOR",
                    "after_sequence",
                    "after_sequence must not be negative",
                )
                .with_metadata("after_sequence", request.get_ref().after_sequence),
            ));
        }
        Err(status(ApiError::unimplemented("WatchBindingEvents")))
    }
}

fn reviewer(value: &str) -> Result<(), Status> {
    validate::reason(value, "reviewer").map(drop).map_err(|_| {
        status(ApiError::invalid_argument(
            "INVALID_REVIEWER",
            "reviewer",
            "reviewer must name the operator",
        ))
    })
}
