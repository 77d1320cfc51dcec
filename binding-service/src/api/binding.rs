//! BindingService handlers.

use chrono::NaiveDate;
use gongji_proto::binding::v1::{
    self as pb, AcceptBindingRequest, AcceptBindingResponse, ApproveBindingRequest,
    ApproveBindingResponse, AuthorizeUseRequest, AuthorizeUseResponse, CheckAuthorizationRequest,
    CheckAuthorizationResponse, CreateBindingRequest, CreateBindingResponse, DeclineBindingRequest,
    DeclineBindingResponse, GetBindingRequest, GetBindingResponse, ListBindingUsesRequest,
    ListBindingUsesResponse, ListBindingsRequest, ListBindingsResponse, RejectBindingRequest,
    RejectBindingResponse, RevokeBindingRequest, RevokeBindingResponse, SetBindingLimitsRequest,
    SetBindingLimitsResponse, WatchBindingEventsRequest, WatchBindingEventsResponse,
    binding_service_server::BindingService,
};
use gongji_shared::metrics::Metrics;
use gongji_shared::rpc::watch::{WatchStream, Watchers};
use gongji_shared::rpc::{ApiError, auth::Caller, validate};
use gongji_shared::rpc::{Lookup, command, command_or_refusal, execute};
use tonic::{Request, Response, Status};

use super::{convert, error::refusal, failure, status, watch::EventFeed};
use crate::{
    app::{App, Application, Applied, AuthorizationAnswer, Balances, UseAnswer, UseOrder},
    domain::Binding,
    store::{ListFilter, Store},
};

/// Longest binding ID accepted (ours are UUIDs).
const MAX_BINDING_ID_LEN: usize = 64;

/// A reader of registry records who sees no whole names.
static NO_NAMES: std::sync::LazyLock<Caller> = std::sync::LazyLock::new(|| Caller {
    identity: String::new(),
    acting_person: None,
    sees_names: false,
    institutions: Vec::new(),
});

/// The binding API.
pub struct BindingApi<S, P> {
    app: App<S, P>,
    watchers: Watchers,
    metrics: Option<Metrics>,
}

impl<S, P> BindingApi<S, P> {
    pub fn new(app: App<S, P>, watchers: Watchers, metrics: Option<Metrics>) -> Self {
        Self {
            app,
            watchers,
            metrics,
        }
    }

    /// Counts one authorization decision of `rpc` and each reason it was denied for.
    fn count_decision(&self, rpc: &str, answer: &AuthorizationAnswer) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let outcome = if answer.failures.is_empty() {
            "authorized"
        } else {
            "denied"
        };
        metrics
            .counter(
                "gongji_authorization_checks_total",
                &[("rpc", rpc), ("outcome", outcome)],
            )
            .increment(1);
        for failure in &answer.failures {
            metrics
                .counter(
                    "gongji_authorization_denials_total",
                    &[("rpc", rpc), ("reason", failure.reason())],
                )
                .increment(1);
        }
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

fn binding(b: &Binding) -> Option<pb::Binding> {
    Some(convert::binding_to_pb(b, &[]))
}

/// The reviewer is the caller (the review platform), and the operator logged in to it
/// when it names one; the deprecated reviewer field is not read.
fn reviewer(caller: &Caller) -> String {
    match &caller.acting_person {
        Some(operator) => format!("{}/{}", caller.identity, operator.masked()),
        None => caller.identity.clone(),
    }
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

/// The application of a CreateBinding request.
fn application(r: &CreateBindingRequest, today: NaiveDate) -> Result<Application, Status> {
    Ok(Application {
        authorizer: validate::id_number(&r.authorizer_id_number, "authorizer_id_number", today)
            .map_err(status)?,
        beneficiary: validate::id_number(&r.beneficiary_id_number, "beneficiary_id_number", today)
            .map_err(status)?,
        beneficiary_name: validate::person_name(&r.beneficiary_name, "beneficiary_name")
            .map_err(status)?,
        relationship: convert::relationship_from_pb(r.relationship).map_err(status)?,
        kind: convert::kind_from_pb(r.kind).map_err(status)?,
        verification: convert::verification_from_pb(r.verification_method).map_err(status)?,
    })
}

/// The verification method an answer to a request for consent must report.
fn required_verification(raw: i32) -> Result<crate::domain::VerificationMethod, Status> {
    convert::verification_from_pb(raw)
        .map_err(status)?
        .ok_or_else(|| {
            status(ApiError::invalid_argument(
                "INVALID_VERIFICATION_METHOD",
                "verification_method",
                "report how the channel verified the beneficiary",
            ))
        })
}

fn authorization_to_pb(a: &AuthorizationAnswer) -> CheckAuthorizationResponse {
    CheckAuthorizationResponse {
        authorized: a.failures.is_empty(),
        denials: a
            .failures
            .iter()
            .map(|f| pb::Denial {
                reason: f.reason().to_owned(),
                message: f.description().to_owned(),
            })
            .collect(),
        binding_id: a
            .binding
            .as_ref()
            .map(|b| b.binding_id.clone())
            .unwrap_or_default(),
        binding_version: a.binding.as_ref().map_or(0, |b| b.version),
        limits: gongji_shared::rpc::limits::limits_to_pb(&a.limits),
        authorizer_region_code: a
            .authorizer_region
            .as_ref()
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        beneficiary_region_code: a
            .beneficiary_region
            .as_ref()
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        // What payment-service needs: the beneficiary's enrollments and paid years, and the
        // authorizer's region (above). No names, and no record of the authorizer (the
        // deprecated field stays empty).
        beneficiary: a
            .beneficiary
            .as_ref()
            .map(|p| convert::person_to_pb(p, &NO_NAMES)),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl<S: Store, P: Balances> BindingService for BindingApi<S, P> {
    async fn create_binding(
        &self,
        request: Request<CreateBindingRequest>,
    ) -> Result<Response<CreateBindingResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let application = application(&request, self.app.today())?;
        // Others may bind only "logged in as the authorizer".
        caller
            .require_party(&[&application.authorizer])
            .map_err(status)?;
        // A refused application is recorded, and answered (again on retry) as a refusal.
        let to_wire = |applied: &Applied| match applied {
            Applied::Created(b) => Ok(CreateBindingResponse {
                binding: binding(b),
            }),
            Applied::Refused { failures, .. } => Err(status(refusal(failures))),
        };
        command_or_refusal(
            &self.app,
            &request_id,
            "CreateBinding",
            &request,
            to_wire,
            |c| self.app.create_binding(application, c),
        )
        .await
    }

    async fn get_binding(
        &self,
        request: Request<GetBindingRequest>,
    ) -> Result<Response<GetBindingResponse>, Status> {
        let caller = Caller::of(&request);
        let id = binding_id(&request.get_ref().binding_id)?;
        let (b, history) = self.app.binding(&id).await.map_err(failure)?;
        caller
            .require_party(&[&b.authorizer, &b.beneficiary])
            .map_err(status)?;
        Ok(Response::new(GetBindingResponse {
            binding: Some(convert::binding_to_pb(&b, &history)),
        }))
    }

    async fn list_bindings(
        &self,
        request: Request<ListBindingsRequest>,
    ) -> Result<Response<ListBindingsResponse>, Status> {
        let today = self.app.today();
        let caller = Caller::of(&request);
        let r = request.get_ref();
        let (as_authorizer, person) = validate::one_of_two_people(
            (&r.authorizer_id_number, "authorizer_id_number"),
            (&r.beneficiary_id_number, "beneficiary_id_number"),
            today,
        )
        .map_err(status)?;
        caller.require_party(&[&person]).map_err(status)?;
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
        let rows = self.app.list_bindings(&filter).await.map_err(failure)?;
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
        // Only a party revokes, and who asks is the person the caller acts for; the
        // deprecated revoked_by and requester_id_number are not read.
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = binding_id(&request.binding_id)?;
        let requester = caller.acting_person().map_err(status)?.clone();
        let reason = validate::reason(&request.reason, "reason").map_err(status)?;
        let to_wire = |b: &Binding| RevokeBindingResponse {
            binding: binding(b),
        };
        command(
            &self.app,
            &request_id,
            "RevokeBinding",
            &request,
            to_wire,
            |c| async move { self.app.revoke_binding(&id, &requester, &reason, c).await },
        )
        .await
    }

    async fn accept_binding(
        &self,
        request: Request<AcceptBindingRequest>,
    ) -> Result<Response<AcceptBindingResponse>, Status> {
        // Who accepts is the person the caller acts for: the beneficiary, as the rule checks.
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = binding_id(&request.binding_id)?;
        let verification = required_verification(request.verification_method)?;
        let requester = caller.acting_person().map_err(status)?.clone();
        let to_wire = |b: &Binding| AcceptBindingResponse {
            binding: binding(b),
        };
        command(
            &self.app,
            &request_id,
            "AcceptBinding",
            &request,
            to_wire,
            |c| async move {
                self.app
                    .accept_binding(&id, &requester, verification, c)
                    .await
            },
        )
        .await
    }

    async fn decline_binding(
        &self,
        request: Request<DeclineBindingRequest>,
    ) -> Result<Response<DeclineBindingResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = binding_id(&request.binding_id)?;
        let verification = required_verification(request.verification_method)?;
        let reason = validate::reason(&request.reason, "reason").map_err(status)?;
        let requester = caller.acting_person().map_err(status)?.clone();
        let to_wire = |b: &Binding| DeclineBindingResponse {
            binding: binding(b),
        };
        command(
            &self.app,
            &request_id,
            "DeclineBinding",
            &request,
            to_wire,
            |c| async move {
                self.app
                    .decline_binding(&id, &requester, &reason, verification, c)
                    .await
            },
        )
        .await
    }

    async fn set_binding_limits(
        &self,
        request: Request<SetBindingLimitsRequest>,
    ) -> Result<Response<SetBindingLimitsResponse>, Status> {
        // Who sets them is the person the caller acts for: the authorizer, as the rule checks.
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = binding_id(&request.binding_id)?;
        let requester = caller.acting_person().map_err(status)?.clone();
        let limits = gongji_shared::rpc::limits::limits_from_pb(&request.limits).map_err(|e| {
            status(ApiError::invalid_argument(
                "INVALID_LIMIT",
                "limits",
                format!("limits are refused: {e}"),
            ))
        })?;
        let to_wire = |b: &Binding| SetBindingLimitsResponse {
            binding: binding(b),
        };
        command(
            &self.app,
            &request_id,
            "SetBindingLimits",
            &request,
            to_wire,
            |c| async move {
                self.app
                    .set_binding_limits(&id, &requester, limits, c)
                    .await
            },
        )
        .await
    }

    async fn approve_binding(
        &self,
        request: Request<ApproveBindingRequest>,
    ) -> Result<Response<ApproveBindingResponse>, Status> {
        let reviewer = reviewer(&Caller::of(&request));
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = binding_id(&request.binding_id)?;
        let to_wire = |b: &Binding| ApproveBindingResponse {
            binding: binding(b),
        };
        command(
            &self.app,
            &request_id,
            "ApproveBinding",
            &request,
            to_wire,
            |c| async move { self.app.approve_binding(&id, &reviewer, c).await },
        )
        .await
    }

    async fn reject_binding(
        &self,
        request: Request<RejectBindingRequest>,
    ) -> Result<Response<RejectBindingResponse>, Status> {
        let reviewer = reviewer(&Caller::of(&request));
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = binding_id(&request.binding_id)?;
        let reason = validate::reason(&request.reason, "reason").map_err(status)?;
        let to_wire = |b: &Binding| RejectBindingResponse {
            binding: binding(b),
        };
        command(
            &self.app,
            &request_id,
            "RejectBinding",
            &request,
            to_wire,
            |c| async move { self.app.reject_binding(&id, &reviewer, &reason, c).await },
        )
        .await
    }

    async fn check_authorization(
        &self,
        request: Request<CheckAuthorizationRequest>,
    ) -> Result<Response<CheckAuthorizationResponse>, Status> {
        let today = self.app.today();
        let caller = Caller::of(&request);
        let r = request.get_ref();
        let authorizer =
            validate::id_number(&r.authorizer_id_number, "authorizer_id_number", today)
                .map_err(status)?;
        let beneficiary =
            validate::id_number(&r.beneficiary_id_number, "beneficiary_id_number", today)
                .map_err(status)?;
        let purpose = convert::purpose_from_pb(r.purpose).map_err(status)?;
        caller
            .require_party(&[&authorizer, &beneficiary])
            .map_err(status)?;
        let answer = self
            .app
            .check_authorization(&authorizer, &beneficiary, purpose)
            .await
            .map_err(failure)?;
        self.count_decision("CheckAuthorization", &answer);
        Ok(Response::new(authorization_to_pb(&answer)))
    }

    async fn authorize_use(
        &self,
        request: Request<AuthorizeUseRequest>,
    ) -> Result<Response<AuthorizeUseResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let today = self.app.today();
        let order = UseOrder {
            authorizer: validate::id_number(
                &request.authorizer_id_number,
                "authorizer_id_number",
                today,
            )
            .map_err(status)?,
            beneficiary: validate::id_number(
                &request.beneficiary_id_number,
                "beneficiary_id_number",
                today,
            )
            .map_err(status)?,
            purpose: convert::purpose_from_pb(request.purpose).map_err(status)?,
            amount: validate::positive_money(&request.amount, "amount").map_err(status)?,
            movement_id: validate::identifier(
                &request.movement_id,
                "movement_id",
                "INVALID_MOVEMENT_ID",
                MAX_BINDING_ID_LEN,
            )
            .map_err(status)?,
        };
        caller.require_party(&[&order.authorizer]).map_err(status)?;
        let to_wire = |a: &UseAnswer| AuthorizeUseResponse {
            authorization: Some(authorization_to_pb(&a.answer)),
            r#use: a.recorded.as_ref().map(convert::use_to_pb),
        };
        // Its answer is stored first in its one transaction, and it calls nobody: the first
        // answer is looked for only when its request ID turns out taken.
        execute(
            &self.app,
            Lookup::OnConflict,
            &request_id,
            "AuthorizeUse",
            &request,
            move |a| Ok(to_wire(a)),
            |c| async move {
                // Counted once: a retry is answered from the first answer, never here.
                let answer = self.app.authorize_use(order, c).await;
                if let Ok(a) = &answer {
                    self.count_decision("AuthorizeUse", &a.answer);
                }
                answer
            },
        )
        .await
        .map(Response::new)
        .map_err(|e| e.into_status::<App<S, P>>())
    }

    async fn list_binding_uses(
        &self,
        request: Request<ListBindingUsesRequest>,
    ) -> Result<Response<ListBindingUsesResponse>, Status> {
        let r = request.get_ref();
        let id = binding_id(&r.binding_id)?;
        let page_size = validate::page_size(r.page_size).map_err(status)?;
        let after = page_token(&r.page_token)?;
        // One more than a page tells whether another page follows.
        let rows = self
            .app
            .binding_uses(&id, after, page_size + 1)
            .await
            .map_err(failure)?;
        let (rows, next_page_token) = validate::page(rows, page_size, |(position, _)| *position);
        Ok(Response::new(ListBindingUsesResponse {
            uses: rows.iter().map(|(_, u)| convert::use_to_pb(u)).collect(),
            next_page_token,
        }))
    }

    type WatchBindingEventsStream = WatchStream<WatchBindingEventsResponse>;

    async fn watch_binding_events(
        &self,
        request: Request<WatchBindingEventsRequest>,
    ) -> Result<Response<Self::WatchBindingEventsStream>, Status> {
        let caller = Caller::of(&request);
        let feed = EventFeed {
            app: self.app.clone(),
        };
        let stream = self.watchers.watch(
            feed,
            &caller.identity,
            request.get_ref().after_sequence,
            "after_sequence",
        )?;
        Ok(Response::new(stream))
    }
}
