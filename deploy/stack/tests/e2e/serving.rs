//! Health, reflection and the peer-outage behaviour of payment-service.

use std::time::Duration;

use gongji_proto::payment::v1::PayPremiumRequest;
use gongji_stack::health;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_reflection::pb::v1alpha::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::{
    both_backends, fixtures,
    support::{Backend, IN_WINDOW, TestEnv, assert_error},
};

both_backends!(
    shutdown_ends_event_streams_and_drains_quickly,
    every_service_is_serving,
    reflection_lists_each_servers_services,
    binding_outage_fails_closed,
    round_trips_are_not_held_back_by_nagle,
    a_stopping_service_says_not_serving_while_it_still_takes_calls,
);

async fn every_service_is_serving(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    for (url, service) in [
        (env.stack.binding_url(), ""),
        (env.stack.binding_url(), "gongji.binding.v1.BindingService"),
        (env.stack.binding_url(), "gongji.binding.v1.RegistryService"),
        (env.stack.payment_url(), ""),
        (env.stack.payment_url(), "gongji.payment.v1.AccountService"),
        (env.stack.payment_url(), "gongji.payment.v1.PremiumService"),
        (
            env.stack.payment_url(),
            "gongji.payment.v1.MedicalExpenseService",
        ),
        (
            env.stack.payment_url(),
            "gongji.payment.v1.SettlementService",
        ),
        (env.stack.payment_url(), "gongji.payment.v1.WalletService"),
    ] {
        assert_eq!(
            health(&url, service).await,
            Some(ServingStatus::Serving),
            "{url} {service:?}"
        );
    }
    assert_eq!(
        health(&env.stack.payment_url(), "gongji.payment.v1.NoSuchService").await,
        None,
        "an unknown service is NOT_FOUND, not SERVING"
    );
    env.finish().await;
}

async fn list_services(url: String) -> Vec<String> {
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.next().await.expect("one response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

async fn list_services_v1(url: String) -> Vec<String> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1")
        .into_inner();
    let response = responses.next().await.expect("one response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

async fn reflection_lists_each_servers_services(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let common = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    let mut binding: Vec<String> = [
        "gongji.binding.v1.BindingService",
        "gongji.binding.v1.RegistryService",
    ]
    .iter()
    .chain(&common)
    .map(|s| s.to_string())
    .collect();
    binding.sort();
    let mut payment: Vec<String> = [
        "gongji.payment.v1.AccountService",
        "gongji.payment.v1.MedicalExpenseService",
        "gongji.payment.v1.PremiumService",
        "gongji.payment.v1.SettlementService",
        "gongji.payment.v1.WalletService",
    ]
    .iter()
    .chain(&common)
    .map(|s| s.to_string())
    .collect();
    payment.sort();
    assert_eq!(list_services(env.stack.binding_url()).await, binding);
    assert_eq!(list_services(env.stack.payment_url()).await, payment);
    assert_eq!(
        list_services_v1(env.stack.payment_url()).await,
        payment,
        "reflection v1 too"
    );
    env.finish().await;
}

async fn wait_for(url: &str, service: &str, want: ServingStatus) {
    for _ in 0..100 {
        if health(url, service).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{service} did not become {want:?}");
}

async fn binding_outage_fails_closed(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    env.stack
        .stop_binding()
        .await
        .expect("stop binding-service");
    let payment = env.stack.payment_url();
    wait_for(
        &payment,
        "gongji.payment.v1.PremiumService",
        ServingStatus::NotServing,
    )
    .await;
    wait_for(
        &payment,
        "gongji.payment.v1.MedicalExpenseService",
        ServingStatus::NotServing,
    )
    .await;
    wait_for(
        &payment,
        "gongji.payment.v1.WalletService",
        ServingStatus::NotServing,
    )
    .await;
    assert_eq!(
        health(&payment, "").await,
        Some(ServingStatus::Serving),
        "the server as a whole stays in rotation"
    );
    assert_eq!(
        health(&payment, "gongji.payment.v1.AccountService").await,
        Some(ServingStatus::Serving)
    );

    let pay = c
        .premiums
        .pay_premium(PayPremiumRequest {
            request_id: "pay-during-outage".into(),
            payer_id_number: fixtures::EMPLOYEE.into(),
            beneficiary_id_number: fixtures::CHILD.into(),
            coverage_year: 2025,
            expected_amount: "400.00".into(),
            other_means: None,
            back_payment: false,
        })
        .await;
    assert_error(
        pay,
        Code::Unavailable,
        "DEPENDENCY_UNAVAILABLE",
        "payment.gongji",
    );
    let account = c
        .accounts
        .get_account(gongji_proto::payment::v1::GetAccountRequest {
            holder_id_number: fixtures::EMPLOYEE.into(),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(account.prior_years_balance, "1000.00", "no money moved");

    env.stack
        .restart_binding()
        .await
        .expect("restart binding-service");
    wait_for(
        &payment,
        "gongji.payment.v1.PremiumService",
        ServingStatus::Serving,
    )
    .await;
    env.finish().await;
}

async fn shutdown_ends_event_streams_and_drains_quickly(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let mut stream = c
        .bindings
        .watch_binding_events(gongji_proto::binding::v1::WatchBindingEventsRequest {
            after_sequence: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let started = std::time::Instant::now();
    env.stack.stop_binding().await.expect("a clean stop");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an open stream must not hold the drain until its timeout"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends");
    match ended {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        None => {}
        Some(Ok(event)) => panic!("no events were written, got {event:?}"),
    }
    env.finish().await;
}

/// With a shutdown delay, a stop turns health NOT_SERVING first and closes the listener only
/// after the delay: a readiness probe (a new connection) sees NOT_SERVING, and calls are
/// still answered meanwhile. Without it both would happen in the same instant.
async fn a_stopping_service_says_not_serving_while_it_still_takes_calls(backend: Backend) {
    const DELAY_MS: u64 = 3_000;
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    env.stack.stop_binding().await.expect("a clean stop");
    env.stack.config.shutdown_delay_ms = DELAY_MS;
    env.stack.restart_binding().await.expect("restart");
    env.stack
        .wait_serving(gongji_stack::READY_TIMEOUT_MS)
        .await
        .expect("serving");
    let url = env.stack.binding_url();
    let running = env.stack.binding.take().expect("binding-service runs");
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(running.stop());
    wait_for(&url, "", ServingStatus::NotServing).await;
    wait_for(
        &url,
        "gongji.binding.v1.RegistryService",
        ServingStatus::NotServing,
    )
    .await;
    let person = c
        .registry
        .get_insured_person(gongji_proto::binding::v1::GetInsuredPersonRequest {
            id_number: fixtures::EMPLOYEE.to_owned(),
        })
        .await
        .expect("a call is still answered while NOT_SERVING");
    assert_eq!(
        person.into_inner().person.map(|p| p.id_number).as_deref(),
        Some(fixtures::EMPLOYEE)
    );
    assert!(
        !stopping.is_finished() && started.elapsed() < Duration::from_millis(DELAY_MS),
        "the listener must still be open: the checks above ran inside the delay"
    );
    stopping.await.expect("joined").expect("a clean stop");
    assert!(
        started.elapsed() >= Duration::from_millis(DELAY_MS),
        "the stop waits out the delay"
    );
    assert_eq!(health(&url, "").await, None, "the listener is closed");
    env.finish().await;
}

/// A payment makes two calls to binding-service and a few database round trips: on
/// loopback it is a few times a trivial read of the same server, never the tens of
/// milliseconds Nagle's algorithm and delayed ACKs add to each hop when TCP_NODELAY is
/// missing. Measured as a ratio of medians, interleaved, never as an absolute time.
async fn round_trips_are_not_held_back_by_nagle(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    const PAYMENTS: usize = 12;
    let mut payments = Vec::new();
    let mut reads = Vec::new();
    for n in 0..PAYMENTS {
        let child = fixtures::id_number("20150101", 300 + u32::try_from(n).expect("small"));
        if n == 0 {
            fixtures::employee(&mut c).await;
            fixtures::fund(&mut c, fixtures::EMPLOYEE, "10000.00").await;
        }
        fixtures::register(
            &mut c,
            fixtures::person(&child, "孩子", None, Some("340500")),
        )
        .await;
        let mut bind = fixtures::bind_child(&fixtures::opaque("bind"), &child, "孩子");
        bind.authorizer_id_number = fixtures::EMPLOYEE.into();
        if c.bindings.create_binding(bind).await.is_err() {
            // The policy's cap on beneficiaries: enough payments were measured.
            break;
        }
        let started = std::time::Instant::now();
        c.accounts
            .get_account(gongji_proto::payment::v1::GetAccountRequest {
                holder_id_number: fixtures::EMPLOYEE.into(),
            })
            .await
            .expect("read");
        reads.push(started.elapsed());
        let started = std::time::Instant::now();
        c.premiums
            .pay_premium(crate::payment::pay(
                &fixtures::opaque("pay"),
                fixtures::EMPLOYEE,
                &child,
                2025,
            ))
            .await
            .expect("pay");
        payments.push(started.elapsed());
    }
    assert!(payments.len() >= 4, "{} payments measured", payments.len());
    payments.sort();
    reads.sort();
    let median = |v: &[std::time::Duration]| v[v.len() / 2].as_secs_f64();
    let ratio = median(&payments) / median(&reads).max(1e-6);
    assert!(
        ratio < RATIO_LIMIT,
        "a payment takes {ratio:.1}× a read (payments {payments:?}, reads {reads:?})"
    );
    env.finish().await;
}

/// With TCP_NODELAY a payment measures about 9× to 11× a read here (debug build); with it
/// off on the accepted sockets and the peer channel, 160× to 185×: each stall adds about
/// 40 ms against a read of about 1 ms.
const RATIO_LIMIT: f64 = 30.0;
