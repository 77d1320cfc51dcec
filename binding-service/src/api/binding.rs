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
        lifecycle::{self, Change, Party},
        rules::{self, AuthorizationFacts, CreateFacts, Failure},
    },
    store::{Idempotency, ListFilter, Store, StoreError},
};

/// Longest binding ID accepted (ours are UUIDs).
const MAX_BINDING_ID_LEN: usize = 64;
/// Events read per query while streaming.
const WATCH_BATCH: u32 = 100;
/// Events buffered per stream before the reader waits for the client.
const WATCH_BUFFER: usize = 64;
/// How often a stream looks for events committed by other replicas.
const WATCH_POLL_MS: u64 = 500;

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
    validate::identifier(
        value,
        "binding_id",
        "INVALID_BINDING_ID",
        MAX_BINDING_ID_LEN,
    )
    .map_err(status)
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
        let cap = (kind == BindingKind::FundsSharing).then_some(rules.max_beneficiaries);
        let encoded = response.encode_to_vec();
        match store
            .insert_binding(&binding, &event, &idempotency, &encoded, cap)
            .await
        {
            Ok(()) => self.ctx.events.notify_waiters(),
            Err(StoreError::LiveBindingExists) => {
                return Err(refusal(&[Failure::BindingAlreadyExists]));
            }
            Err(StoreError::LimitReached) => {
                return Err(refusal(&[Failure::BindingLimitReached]));
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
        let (as_authorizer, person) = validate::one_of_two_people(
            (&r.authorizer_id_number, "authorizer_id_number"),
            (&r.beneficiary_id_number, "beneficiary_id_number"),
        )
        .map_err(status)?;
        let states = r
            .states
            .iter()
            .map(|s| convert::state_from_pb(*s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(status)?;
        let page_size = validate::page_size(r.page_size).map_err(status)?;
        let after = page_token(&r.page_token)?;
        // One more than a page tells whether another page follows.
        let filter = ListFilter {
            as_authorizer,
            person,
            states,
            after,
            limit: page_size + 1,
        };
        let rows = self
            .ctx
            .store
            .list_bindings(&filter)
            .await
            .map_err(store_failure)?;
        let (rows, next_page_token) = validate::page(rows, page_size, |(position, _)| *position);
        Ok(Response::new(ListBindingsResponse {
            bindings: rows
                .iter()
                .map(|(_, b)| convert::binding_to_pb(b, &[]))
                .collect(),
            next_page_token,
        }))
    }

    async fn revoke_binding(
        &self,
        request: Request<RevokeBindingRequest>,
    ) -> Result<Response<RevokeBindingResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = binding_id(&request.binding_id)?;
        let party = match convert::party_from_pb(request.revoked_by).map_err(status)? {
            pb::Party::Beneficiary => Party::Beneficiary,
            _ => Party::Authorizer,
        };
        let requester = validate::id_number(&request.requester_id_number, "requester_id_number")
            .map_err(status)?;
        let reason = validate::reason(&request.reason, "reason").map_err(status)?;
        let idempotency = Idempotency::of(request_id.as_str(), "RevokeBinding", &request);
        let response = self
            .change(
                &idempotency,
                &id,
                |b| lifecycle::revoke(b, party, &requester, &reason),
                |binding| RevokeBindingResponse {
                    binding: Some(binding),
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn approve_binding(
        &self,
        request: Request<ApproveBindingRequest>,
    ) -> Result<Response<ApproveBindingResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = binding_id(&request.binding_id)?;
        let reviewer = reviewer(&request.reviewer)?;
        let idempotency = Idempotency::of(request_id.as_str(), "ApproveBinding", &request);
        let response = self
            .change(
                &idempotency,
                &id,
                |b| lifecycle::review(b, true, &reviewer, "approved"),
                |binding| ApproveBindingResponse {
                    binding: Some(binding),
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn reject_binding(
        &self,
        request: Request<RejectBindingRequest>,
    ) -> Result<Response<RejectBindingResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = binding_id(&request.binding_id)?;
        let reviewer = reviewer(&request.reviewer)?;
        let reason = validate::reason(&request.reason, "reason").map_err(status)?;
        let idempotency = Idempotency::of(request_id.as_str(), "RejectBinding", &request);
        let response = self
            .change(
                &idempotency,
                &id,
                |b| lifecycle::review(b, false, &reviewer, &reason),
                |binding| RejectBindingResponse {
                    binding: Some(binding),
                },
            )
            .await?;
        Ok(Response::new(response))
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
        let after = request.get_ref().after_sequence;
        if after < 0 {
            return Err(status(
                ApiError::invalid_argument(
                    "INVALID_CURSOR",
                    "after_sequence",
                    "after_sequence must not be negative",
                )
                .with_metadata("after_sequence", after),
            ));
        }
        let permit = self.ctx.watchers.clone().try_acquire_owned().map_err(|_| {
            status(ApiError::resource_exhausted(
                "TOO_MANY_WATCHERS",
                "too many event streams are open; retry later",
            ))
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            stream_events(ctx, after, tx).await;
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Sends every event after `cursor`, in sequence order, then waits for more: woken by local
/// commits, and polling for those of other replicas. Ends when the client goes away or the
/// server stops (UNAVAILABLE: resume elsewhere from the last sequence received).
async fn stream_events<S: Store>(
    ctx: Context<S>,
    mut cursor: i64,
    tx: tokio::sync::mpsc::Sender<Result<WatchBindingEventsResponse, Status>>,
) {
    let mut stopping = ctx.stopping.clone();
    loop {
        // Registered before reading, so a commit between the read and the wait still wakes us.
        let notified = ctx.events.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let events = match ctx.store.events_after(cursor, WATCH_BATCH).await {
            Ok(events) => events,
            Err(e) => {
                let _ = tx.send(Err(store_failure(e))).await;
                return;
            }
        };
        let full = events.len() == WATCH_BATCH as usize;
        for event in events {
            cursor = event.sequence;
            let message = WatchBindingEventsResponse {
                event: Some(convert::event_to_pb(&event)),
            };
            if tx.send(Ok(message)).await.is_err() {
                return;
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(std::time::Duration::from_millis(WATCH_POLL_MS)) => {}
            () = tx.closed() => return,
            () = stopped(&mut stopping) => {
                let _ = tx
                    .send(Err(status(ApiError::unavailable(
                        "SHUTTING_DOWN",
                        "the server is shutting down; resume from the last sequence received",
                    ))))
                    .await;
                return;
            }
        }
    }
}

/// Resolves once the server begins to shut down.
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    // An error means the sender is gone: the server is gone too.
    let _ = stopping.wait_for(|s| *s).await;
}

/// A page token is the position the next page starts after.
fn page_token(token: &str) -> Result<i64, Status> {
    if token.is_empty() {
        return Ok(0);
    }
    token.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        status(ApiError::invalid_argument(
            "INVALID_PAGE_TOKEN",
            "page_token",
            "page_token must come from a previous response",
        ))
    })
}

impl<S: Store> BindingApi<S> {
    /// Reads a binding, asks `decide` for the change, stores the next version with its
    /// audit event and response in one transaction, and answers with `wrap(binding)`.
    async fn change<R: Message + Default>(
        &self,
        idempotency: &Idempotency,
        id: &str,
        decide: impl FnOnce(&Binding) -> Result<Change, lifecycle::Refusal>,
        wrap: impl FnOnce(pb::Binding) -> R,
    ) -> Result<R, Status> {
        if let Some(first) = replay(&self.ctx.store, idempotency).await? {
            return Ok(first);
        }
        let (current, _) = self
            .ctx
            .store
            .binding(id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| {
                status(
                    ApiError::not_found("BINDING_NOT_FOUND", "no binding with this ID")
                        .with_metadata("binding_id", id),
                )
            })?;
        let change = decide(&current).map_err(|refusal| {
            let error = match refusal {
                lifecycle::Refusal::NotAParty => ApiError::permission_denied(
                    "NOT_A_PARTY",
                    "only the binding's authorizer or beneficiary may revoke it",
                ),
                lifecycle::Refusal::NotActive => ApiError::failed_precondition(
                    "BINDING_NOT_ACTIVE",
                    "the binding has already ended",
                ),
                lifecycle::Refusal::NotPending => ApiError::failed_precondition(
                    "BINDING_NOT_PENDING",
                    "only a PENDING_REVIEW binding can be reviewed",
                ),
            };
            status(
                error
                    .with_metadata("binding_id", id)
                    .with_metadata("state", current.state.as_str()),
            )
        })?;
        let (next, event) = lifecycle::apply(
            &current,
            &change,
            &idempotency.request_id,
            self.ctx.clock.now(),
        );
        let response = wrap(convert::binding_to_pb(&next, &[]));
        match self
            .ctx
            .store
            .transition(
                &next,
                current.version,
                &event,
                idempotency,
                &response.encode_to_vec(),
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(status(ApiError::aborted(
                    "CONCURRENT_UPDATE",
                    "the binding changed meanwhile; read it again and retry",
                )));
            }
            Err(StoreError::RequestIdTaken) => {
                return replay(&self.ctx.store, idempotency).await?.ok_or_else(|| {
                    status(ApiError::aborted(
                        "CONCURRENT_UPDATE",
                        "retry with the same request_id",
                    ))
                });
            }
            Err(e) => return Err(store_failure(e)),
        }
        self.ctx.events.notify_waiters();
        tracing::info!(
            binding_id = %next.binding_id,
            from = current.state.as_str(),
            to = next.state.as_str(),
            actor = %event.actor,
            "binding changed"
        );
        Ok(response)
    }
}

fn reviewer(value: &str) -> Result<String, Status> {
    validate::reason(value, "reviewer").map_err(|_| {
        status(ApiError::invalid_argument(
            "INVALID_REVIEWER",
            "reviewer",
            "reviewer must name the operator",
        ))
    })
}
