//! The one idempotent-command runner (AIP-155) every state-changing RPC of both services
//! goes through: replay the first answer, else run the use case (which stores its answer in
//! its effect's transaction), and replay again when a concurrent call with the same request
//! ID stored first.

use std::{future::Future, sync::Arc};

use prost::Message;
use tonic::{Response, Status};

use super::ApiError;
use crate::{
    command::{Command, Idempotency, SavedResponse},
    domain::RequestId,
};

/// A service's side of the runner: where its first answers are kept, and how its failures
/// become statuses.
pub trait CommandHost: Sync {
    /// The service's use-case error.
    type Error;

    /// The response recorded under `request_id` in `scope` (the caller's), if any.
    fn saved_response(
        &self,
        scope: &str,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<SavedResponse>, Self::Error>> + Send;

    /// Whether the error says a concurrent call with the same request ID stored first.
    fn lost_race(error: &Self::Error) -> bool;

    /// The status of a use case's failure.
    fn failure(error: Self::Error) -> Status;

    /// The status of a refusal of the runner's own (REQUEST_ID_REUSED, ...), under the
    /// service's ErrorInfo domain.
    fn refusal(error: ApiError) -> Status;
}

/// Why a command produced no response message.
#[derive(Debug)]
pub enum CommandError<E> {
    /// The request ID cannot be answered: reused for another request, or its stored answer
    /// is unreadable, or the concurrent call that took it left nothing to replay.
    Replay(ApiError),
    /// The use case (or the lookup of the first answer) failed.
    Run(E),
    /// The use case recorded a refusal as its answer (a retry gets it again).
    Answered(Status),
}

/// The first byte of a recorded refusal. No protobuf message starts with it (field number 0
/// does not exist), so a stored answer is told apart from a stored response message without
/// a column of its own, and answers stored before refusals were recorded read as before.
const REFUSAL_TAG: u8 = 0;

/// A refusal as stored: the tag, then the `google.rpc.Status` with its details.
fn refusal_bytes(status: &Status) -> Vec<u8> {
    let details = if status.details().is_empty() {
        tonic_types::Status {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: Vec::new(),
        }
        .encode_to_vec()
    } else {
        status.details().to_vec()
    };
    let mut bytes = Vec::with_capacity(details.len() + 1);
    bytes.push(REFUSAL_TAG);
    bytes.extend_from_slice(&details);
    bytes
}

/// A stored refusal as the status it was.
fn refusal_from(bytes: &[u8]) -> Option<Status> {
    let status = tonic_types::Status::decode(bytes).ok()?;
    Some(Status::with_details(
        tonic::Code::from_i32(status.code),
        status.message,
        bytes.to_vec().into(),
    ))
}

/// When the runner looks for a first answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Before running the use case: a retry runs nothing.
    First,
    /// Only when the use case finds the request ID taken. For a use case whose whole effect
    /// is one transaction that stores its answer before anything else can conflict, and
    /// that calls nobody: a retry runs it again, finds the ID taken, rolls back, and gets
    /// the first answer, one read fewer for every first call.
    OnConflict,
}

/// Runs one state-changing call: `to_wire` turns the use case's outcome into the RPC's
/// response, or into a refusal the use case recorded with its effect; `run` gets the
/// command (idempotency record and answer encoder) and performs the use case; `lookup` says
/// when a first answer is looked for.
pub async fn execute<H, Req, R, T, Fut>(
    host: &H,
    lookup: Lookup,
    request_id: &RequestId,
    operation: &'static str,
    request: &Req,
    to_wire: impl Fn(&T) -> Result<R, Status> + Send + Sync + 'static,
    run: impl FnOnce(Command<T>) -> Fut,
) -> Result<R, CommandError<H::Error>>
where
    H: CommandHost,
    Req: Message,
    R: Message + Default,
    Fut: Future<Output = Result<T, H::Error>>,
{
    let idempotency = scoped_idempotency(request_id.as_str(), operation, request);
    if lookup == Lookup::First
        && let Some(first) = replay(host, &idempotency).await?
    {
        return Ok(first);
    }
    let to_wire = Arc::new(to_wire);
    let encoder = Arc::clone(&to_wire);
    let command = Command::new(idempotency.clone(), move |outcome: &T| {
        match encoder(outcome) {
            Ok(response) => response.encode_to_vec(),
            Err(refusal) => refusal_bytes(&refusal),
        }
    });
    match run(command).await {
        Ok(outcome) => to_wire(&outcome).map_err(CommandError::Answered),
        Err(error) if H::lost_race(&error) => replay(host, &idempotency).await?.ok_or_else(|| {
            CommandError::Replay(ApiError::aborted(
                "CONCURRENT_UPDATE",
                "retry with the same request_id",
            ))
        }),
        Err(error) => Err(CommandError::Run(error)),
    }
}

/// The first answer to this request ID, if there is one.
async fn replay<H, R>(
    host: &H,
    idempotency: &Idempotency,
) -> Result<Option<R>, CommandError<H::Error>>
where
    H: CommandHost,
    R: Message + Default,
{
    let saved = host
        .saved_response(&idempotency.scope, &idempotency.request_id)
        .await
        .map_err(CommandError::Run)?;
    if let Some(saved) = &saved
        && saved.is_expired()
    {
        // The ID was used, but its answer is gone: running again could do the effect twice.
        return Err(CommandError::Replay(
            ApiError::failed_precondition(
                "REQUEST_ID_EXPIRED",
                "request_id was used so long ago that its first answer is no longer kept; nothing was done again",
            )
            .with_metadata("request_id", &idempotency.request_id)
            .with_metadata("first_operation", &saved.operation),
        ));
    }
    if let Some(saved) = &saved
        && idempotency.is_same_request(saved)
        && saved.response.first() == Some(&REFUSAL_TAG)
    {
        tracing::info!(request_id = %idempotency.request_id, operation = idempotency.operation, "replaying the first answer, a refusal");
        return match refusal_from(&saved.response[1..]) {
            Some(status) => Err(CommandError::Answered(status)),
            None => Err(CommandError::Replay(ApiError::internal())),
        };
    }
    decode_first(idempotency, saved).map_err(CommandError::Replay)
}

/// The idempotency record of `request`, scoped to the authenticated caller and the person it
/// acts for: another caller's request IDs are not ours to see.
fn scoped_idempotency<Req: Message>(
    request_id: &str,
    operation: &'static str,
    request: &Req,
) -> Idempotency {
    let (caller, acting_person) = super::auth::request_actor();
    Idempotency::new(request_id, operation, &request.encode_to_vec())
        .scoped(&caller, acting_person.as_ref().map(|p| p.as_str()))
}

/// A command for one part of a batch, under a request ID of its own, scoped to the caller
/// being served like every command: the part's answer is recorded as `to_wire` of its
/// outcome, as its own RPC would record it.
pub fn part_command<Req: Message, R: Message, T>(
    request_id: &str,
    operation: &'static str,
    request: &Req,
    to_wire: impl Fn(&T) -> R + Send + Sync + 'static,
) -> Command<T> {
    let idempotency = scoped_idempotency(request_id, operation, request);
    Command::new(idempotency, move |outcome: &T| {
        to_wire(outcome).encode_to_vec()
    })
}

/// [`execute`] as an RPC answers: the response, or the failure as the host's status.
pub async fn command<H, Req, R, T, Fut>(
    host: &H,
    request_id: &RequestId,
    operation: &'static str,
    request: &Req,
    to_wire: impl Fn(&T) -> R + Send + Sync + 'static,
    run: impl FnOnce(Command<T>) -> Fut,
) -> Result<Response<R>, Status>
where
    H: CommandHost,
    Req: Message,
    R: Message + Default,
    Fut: Future<Output = Result<T, H::Error>>,
{
    command_or_refusal(
        host,
        request_id,
        operation,
        request,
        move |t| Ok(to_wire(t)),
        run,
    )
    .await
}

/// [`command`] for a use case whose outcome may be a refusal it records (a retry gets the
/// same refusal): `to_wire` answers it with the refusal's status.
pub async fn command_or_refusal<H, Req, R, T, Fut>(
    host: &H,
    request_id: &RequestId,
    operation: &'static str,
    request: &Req,
    to_wire: impl Fn(&T) -> Result<R, Status> + Send + Sync + 'static,
    run: impl FnOnce(Command<T>) -> Fut,
) -> Result<Response<R>, Status>
where
    H: CommandHost,
    Req: Message,
    R: Message + Default,
    Fut: Future<Output = Result<T, H::Error>>,
{
    execute(
        host,
        Lookup::First,
        request_id,
        operation,
        request,
        to_wire,
        run,
    )
    .await
    .map(Response::new)
    .map_err(CommandError::into_status::<H>)
}

impl<E> CommandError<E> {
    /// The status the host answers this failure with.
    pub fn into_status<H: CommandHost<Error = E>>(self) -> Status {
        match self {
            CommandError::Replay(e) => H::refusal(e),
            CommandError::Run(e) => H::failure(e),
            CommandError::Answered(status) => status,
        }
    }
}

/// The first answer if `saved` is this request's; REQUEST_ID_REUSED if the ID was used for
/// something else; `None` if the ID is new.
fn decode_first<R: Message + Default>(
    idempotency: &Idempotency,
    saved: Option<SavedResponse>,
) -> Result<Option<R>, ApiError> {
    let Some(saved) = saved else { return Ok(None) };
    if !idempotency.is_same_request(&saved) {
        return Err(ApiError::invalid_argument(
            "REQUEST_ID_REUSED",
            "request_id",
            "request_id was used before for a different request; use a new one",
        )
        .with_metadata("request_id", &idempotency.request_id)
        .with_metadata("first_operation", &saved.operation));
    }
    tracing::info!(request_id = %idempotency.request_id, operation = idempotency.operation, "replaying the first answer");
    R::decode(saved.response.as_slice())
        .map(Some)
        .map_err(|error| {
            tracing::error!(%error, "stored response does not decode");
            ApiError::internal()
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tonic_types::StatusExt;

    use super::*;

    /// A log holding at most one answer, and a use case that may lose a race to it.
    #[derive(Default)]
    struct Log(Mutex<Option<SavedResponse>>);

    impl CommandHost for Log {
        type Error = Failure;

        async fn saved_response(&self, _: &str, _: &str) -> Result<Option<SavedResponse>, Failure> {
            Ok(self.0.lock().unwrap().clone())
        }

        fn lost_race(error: &Failure) -> bool {
            *error == Failure::Taken
        }

        fn failure(_: Failure) -> Status {
            Status::failed_precondition("refused")
        }

        fn refusal(error: ApiError) -> Status {
            error.into_status("test.gongji")
        }
    }

    #[derive(Debug, PartialEq)]
    enum Failure {
        Taken,
        Refused,
    }

    fn id(s: &str) -> RequestId {
        RequestId::parse(s).unwrap()
    }

    /// Runs "Op" on `request`; the use case records `answer` in `log` and then does `then`.
    async fn run(
        log: &Log,
        request: &str,
        answer: &str,
        then: Result<(), Failure>,
    ) -> Result<String, CommandError<Failure>> {
        let answer = answer.to_owned();
        execute(
            log,
            Lookup::First,
            &id("req-1"),
            "Op",
            &request.to_owned(),
            |s: &String| Ok(s.clone()),
            |command: Command<String>| async move {
                let saved = SavedResponse {
                    operation: command.idempotency().operation.to_owned(),
                    fingerprint: command.idempotency().fingerprint.clone(),
                    response: command.response(&answer),
                };
                *log.0.lock().unwrap() = Some(saved);
                then.map(|()| answer)
            },
        )
        .await
    }

    #[tokio::test]
    async fn a_retry_gets_the_first_answer_without_running_again() {
        let log = Log::default();
        assert_eq!(run(&log, "a", "first", Ok(())).await.unwrap(), "first");
        assert_eq!(run(&log, "a", "second", Ok(())).await.unwrap(), "first");
    }

    #[tokio::test]
    async fn another_request_under_the_same_id_is_a_reuse() {
        let log = Log::default();
        run(&log, "a", "first", Ok(())).await.unwrap();
        match run(&log, "b", "second", Ok(())).await {
            Err(CommandError::Replay(e)) => assert_eq!(e.reason(), "REQUEST_ID_REUSED"),
            other => panic!("expected a reuse, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_id_whose_answer_expired_runs_nothing_and_says_so() {
        let log = Log::default();
        *log.0.lock().unwrap() = Some(SavedResponse::expired("Op".to_owned()));
        for request in ["a", "b"] {
            match run(&log, request, "again", Ok(())).await {
                Err(CommandError::Replay(e)) => assert_eq!(e.reason(), "REQUEST_ID_EXPIRED"),
                other => panic!("expected an expired ID, got {other:?}"),
            }
        }
        assert!(
            log.0.lock().unwrap().as_ref().unwrap().is_expired(),
            "the use case never ran"
        );
        // A lost race to an expired record says the same.
        *log.0.lock().unwrap() = Some(SavedResponse::expired("Op".to_owned()));
        let raced = execute(
            &log,
            Lookup::OnConflict,
            &id("req-1"),
            "Op",
            &"a".to_owned(),
            |s: &String| Ok(s.clone()),
            |_: Command<String>| async { Err::<String, _>(Failure::Taken) },
        )
        .await;
        match raced {
            Err(CommandError::Replay(e)) => assert_eq!(e.reason(), "REQUEST_ID_EXPIRED"),
            other => panic!("expected an expired ID, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_lost_race_answers_what_the_winner_stored() {
        let log = Log::default();
        let got = run(&log, "a", "winner", Err(Failure::Taken)).await.unwrap();
        assert_eq!(got, "winner");
    }

    #[tokio::test]
    async fn a_reuse_answers_invalid_argument_under_the_host_domain() {
        let log = Log::default();
        run(&log, "a", "first", Ok(())).await.unwrap();
        let status = command(
            &log,
            &id("req-1"),
            "Op",
            &"b".to_owned(),
            |s: &String| s.clone(),
            |_: Command<String>| async { Err::<String, _>(Failure::Refused) },
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn a_recorded_refusal_is_answered_again_on_retry() {
        let log = Log::default();
        let (request_id, request) = (id("req-9"), "r".to_owned());
        let shared = &log;
        let first = command_or_refusal(
            shared,
            &request_id,
            "Op",
            &request,
            |s: &String| {
                Err::<String, _>(
                    ApiError::failed_precondition("RULE_BROKEN", "no")
                        .with_metadata("rule", s)
                        .into_status("test.gongji"),
                )
            },
            |command: Command<String>| async move {
                let answer = "r1".to_owned();
                let saved = SavedResponse {
                    operation: command.idempotency().operation.to_owned(),
                    fingerprint: command.idempotency().fingerprint.clone(),
                    response: command.response(&answer),
                };
                *shared.0.lock().unwrap() = Some(saved);
                Ok(answer)
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            log.0.lock().unwrap().as_ref().unwrap().response[0],
            REFUSAL_TAG
        );
        // The retry does not run the use case: the log would be rewritten otherwise.
        let again = command_or_refusal(
            &log,
            &id("req-9"),
            "Op",
            &"r".to_owned(),
            |_: &String| Ok::<String, Status>("never".to_owned()),
            |_: Command<String>| async { Err::<String, Failure>(Failure::Refused) },
        )
        .await
        .unwrap_err();
        assert_eq!(again.code(), first.code());
        assert_eq!(again.message(), first.message());
        let info = |s: &Status| s.get_error_details().error_info().unwrap().clone();
        assert_eq!(info(&again).reason, "RULE_BROKEN");
        assert_eq!(info(&again).metadata, info(&first).metadata);
    }

    #[tokio::test]
    async fn a_refusal_passes_through() {
        let log = Log::default();
        match run(&log, "a", "x", Err(Failure::Refused)).await {
            Err(CommandError::Run(Failure::Refused)) => {}
            other => panic!("expected the refusal, got {other:?}"),
        }
    }
}
