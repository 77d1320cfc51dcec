//! `gongji-admin`: the operator's command. It speaks gRPC to the services with the same
//! credentials as any caller (a bearer token file, TLS if the address is `https://`), so
//! what it may do is what its caller's roles allow. Human-readable output by default,
//! `--json` for scripts; ID numbers masked unless `--show-id-numbers`. Exit status: 0 done,
//! 1 the ledger failed a check, 2 a call failed.
//!
//! It runs the scheduled jobs (`deploy/k8s/cronjobs.yaml`): settling yesterday is safe to
//! run again, since its request ID is the date's and a retry gets the first answer; the
//! year's closing walks every account a page at a time, and a second run moves nothing twice.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use chrono::Datelike;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use gongji_proto::{
    binding::v1::{
        self as binding_pb, GetBindingRequest, binding_service_client::BindingServiceClient,
        registry_service_client::RegistryServiceClient,
    },
    payment::v1::{
        self as payment_pb, CloseYearForAllAccountsRequest, CloseYearForAllAccountsResponse,
        GetAccountRequest, GetPremiumPaymentRequest, SettleBusinessDayRequest, VerifyLedgerRequest,
        account_service_client::AccountServiceClient, premium_service_client::PremiumServiceClient,
        settlement_service_client::SettlementServiceClient,
    },
};
use gongji_shared::{Clock, IdNumber, Money, rpc::peer::PeerInterceptor};
use serde_json::{Value, json};
use tonic::{codegen::InterceptedService, transport::Channel};

/// Pages a ledger verification may take before the command gives up: with the service's own
/// page bounds, far beyond any ledger, and still a bound.
const MAX_VERIFY_PAGES: usize = 1_000_000;
/// Pages of a year's closing, likewise: 100 million accounts at 100 a page.
const MAX_CLOSE_YEAR_PAGES: usize = 1_000_000;

/// The operator's command for gongji.
#[derive(Debug, Parser)]
#[command(name = "gongji-admin")]
struct Args {
    /// payment-service (`http://host:port`, or `https://` for TLS).
    #[arg(
        long,
        env = "GONGJI_ADMIN_PAYMENT_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    payment_addr: String,
    /// binding-service, the same way.
    #[arg(
        long,
        env = "GONGJI_ADMIN_BINDING_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    binding_addr: String,
    /// The caller's bearer token, as a file (a mounted secret).
    #[arg(long, env = "GONGJI_ADMIN_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The CA that signed the services' certificates, for `https://` addresses.
    #[arg(long, env = "GONGJI_ADMIN_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Deadline of each call (100 to 60000 ms).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    timeout_ms: u64,
    /// One JSON document on standard output instead of text.
    #[arg(long)]
    json: bool,
    /// Print ID numbers whole (they are masked otherwise).
    #[arg(long)]
    show_id_numbers: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Settles a business day; yesterday (Asia/Shanghai) when no date is given. Running it
    /// again answers the first settlement.
    SettleDay {
        /// The business day (YYYY-MM-DD).
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Verifies the whole ledger, page after page; exit status 1 if any check failed.
    VerifyLedger {
        /// Settled days per call (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=1000))]
        page_size: i32,
    },
    /// Closes a year for every account (last year, Asia/Shanghai, when none is given), a
    /// page per call with a progress line; exit status 1 when accounts were left for a later
    /// run. Run again to retry them: accounts closed before move nothing.
    CloseYear {
        /// The year to close.
        #[arg(long)]
        year: Option<i32>,
        /// Accounts per call (1 to 100).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=100))]
        page_size: i32,
        /// Resume after this page token (the `next_page_token` a run printed last).
        #[arg(long, default_value = "")]
        from: String,
    },
    /// Re-seals the personal data of both services under their newest data key, a batch per
    /// call, then retires the older keys; exit status 1 when a value was written under an
    /// older key meanwhile (load the newest key everywhere, then run again).
    Reseal {
        /// Values per table per call (1 to 500).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i32).range(1..=500))]
        batch_size: i32,
    },
    /// Shows one record.
    Show {
        #[command(subcommand)]
        what: Show,
    },
}

#[derive(Debug, Subcommand)]
enum Show {
    /// A personal account, by its holder's ID number.
    Account { holder_id_number: String },
    /// A binding, by its ID.
    Binding { binding_id: String },
    /// A premium payment, by its ID.
    Payment { payment_id: String },
}

type Intercepted = InterceptedService<Channel, PeerInterceptor>;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<tonic::Status>() {
                // The service's answer: its code, message and AIP-193 reason.
                Some(status) => {
                    let reason = tonic_types::StatusExt::get_details_error_info(status)
                        .map(|info| info.reason)
                        .unwrap_or_default();
                    eprintln!(
                        "gongji-admin: {:?} {reason}: {}",
                        status.code(),
                        status.message()
                    );
                }
                None => eprintln!("gongji-admin: {e:#}"),
            }
            ExitCode::from(2)
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let output = match &args.command {
        Command::SettleDay { date } => settle_day(args, *date).await?,
        Command::VerifyLedger { page_size } => return verify_ledger(args, *page_size).await,
        Command::CloseYear {
            year,
            page_size,
            from,
        } => return close_year(args, *year, *page_size, from).await,
        Command::Reseal { batch_size } => return reseal(args, *batch_size).await,
        Command::Show { what } => show(args, what).await?,
    };
    print(args, &output);
    Ok(ExitCode::SUCCESS)
}

async fn channel(args: &Args, addr: &str) -> anyhow::Result<Intercepted> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(addr.to_owned())?
        .timeout(Duration::from_millis(args.timeout_ms))
        .connect_timeout(Duration::from_millis(args.timeout_ms))
        .tcp_nodelay(true);
    if let Some(ca) = &args.tls_ca {
        let pem = std::fs::read(ca)?;
        endpoint = endpoint.tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
        )?;
    }
    let channel = endpoint.connect().await?;
    Ok(InterceptedService::new(
        channel,
        PeerInterceptor::new(args.token_file.clone()),
    ))
}

async fn settle_day(args: &Args, date: Option<NaiveDate>) -> anyhow::Result<Value> {
    let date = match date {
        Some(date) => date,
        None => Clock::System
            .today()
            .pred_opt()
            .ok_or_else(|| anyhow::anyhow!("no day before today"))?,
    };
    let mut client = SettlementServiceClient::new(channel(args, &args.payment_addr).await?);
    let settlement = client
        .settle_business_day(SettleBusinessDayRequest {
            request_id: format!("gongji-admin-settle-{date}"),
            business_date: date.to_string(),
        })
        .await?
        .into_inner()
        .settlement
        .unwrap_or_default();
    Ok(json!({
        "business_date": settlement.business_date,
        "movement_count": settlement.movement_count,
        "lines": settlement.lines.len(),
        "digest": settlement.digest,
    }))
}

async fn verify_ledger(args: &Args, page_size: i32) -> anyhow::Result<ExitCode> {
    let mut client = SettlementServiceClient::new(channel(args, &args.payment_addr).await?);
    let progress = progress_bar(args);
    let (mut token, mut pages, mut days) = (String::new(), 0_usize, 0_usize);
    let mut violations = Vec::new();
    loop {
        anyhow::ensure!(
            pages < MAX_VERIFY_PAGES,
            "the ledger did not end in {MAX_VERIFY_PAGES} pages"
        );
        let page = client
            .verify_ledger(VerifyLedgerRequest {
                page_token: token.clone(),
                page_size,
            })
            .await?
            .into_inner();
        pages += 1;
        days += page.verified_business_dates.len();
        violations.extend(
            page.violations
                .into_iter()
                .map(|v| json!({"check": v.check, "detail": v.detail})),
        );
        progress.set_message(format!(
            "{pages} pages, {days} settled days, {} violations",
            violations.len()
        ));
        progress.tick();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    progress.finish_and_clear();
    let clean = violations.is_empty();
    print(
        args,
        &json!({"pages": pages, "verified_business_days": days, "violations": violations, "clean": clean}),
    );
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn close_year(
    args: &Args,
    year: Option<i32>,
    page_size: i32,
    from: &str,
) -> anyhow::Result<ExitCode> {
    let year = match year {
        Some(year) => year,
        None => Clock::System.today().year() - 1,
    };
    let mut client = AccountServiceClient::new(channel(args, &args.payment_addr).await?);
    let progress = progress_bar(args);
    // Each page's request ID names this run and the page's start: a retry of a page gets
    // its first answer; another run walks the accounts again (closed ones move nothing).
    let run = Clock::System.now().timestamp_millis();
    let mut token = from.to_owned();
    let mut total = CloseYearForAllAccountsResponse::default();
    let mut moved_fen = 0_i64;
    for page in 0.. {
        anyhow::ensure!(
            page < MAX_CLOSE_YEAR_PAGES,
            "the accounts did not end in {MAX_CLOSE_YEAR_PAGES} pages"
        );
        let answer = client
            .close_year_for_all_accounts(CloseYearForAllAccountsRequest {
                request_id: format!("gongji-admin-close-year-{year}-{run}-after-{token}"),
                year,
                page_size,
                page_token: token.clone(),
            })
            .await?
            .into_inner();
        total.accounts_seen += answer.accounts_seen;
        total.accounts_closed += answer.accounts_closed;
        total.accounts_nothing_to_move += answer.accounts_nothing_to_move;
        total.accounts_opened_after += answer.accounts_opened_after;
        total.accounts_retry_later += answer.accounts_retry_later;
        moved_fen += Money::parse(&answer.moved_amount).map_or(0, |m| m.fen());
        progress.set_message(format!(
            "{year}: {} accounts, {} closed, next page token {:?}",
            total.accounts_seen, total.accounts_closed, answer.next_page_token
        ));
        progress.tick();
        if answer.next_page_token.is_empty() {
            break;
        }
        token = answer.next_page_token;
    }
    progress.finish_and_clear();
    let moved = Money::from_fen(moved_fen)
        .map(|m| m.to_string())
        .unwrap_or_default();
    print(
        args,
        &json!({
            "year": year,
            "accounts_seen": total.accounts_seen,
            "accounts_closed": total.accounts_closed,
            "accounts_nothing_to_move": total.accounts_nothing_to_move,
            "accounts_opened_after": total.accounts_opened_after,
            "accounts_retry_later": total.accounts_retry_later,
            "moved_amount": moved,
        }),
    );
    Ok(if total.accounts_retry_later == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Steps of re-sealing a service may take: at 500 values per table per step, far beyond any
/// database, and still a bound.
const MAX_RESEAL_STEPS: usize = 10_000_000;

async fn reseal(args: &Args, batch_size: i32) -> anyhow::Result<ExitCode> {
    let progress = progress_bar(args);
    let run = Clock::System.now().timestamp_millis();
    let id = |service: &str, step: usize| format!("gongji-admin-reseal-{service}-{run}-{step}");
    let mut binding = RegistryServiceClient::new(channel(args, &args.binding_addr).await?);
    let mut payment = AccountServiceClient::new(channel(args, &args.payment_addr).await?);
    let binding_report = reseal_service("binding-service", &progress, async |step| {
        let request = binding_pb::ResealPersonalDataRequest {
            request_id: id("binding", step),
            batch_size,
        };
        let a = binding.reseal_personal_data(request).await?.into_inner();
        Ok((a.rewritten_values, a.done, a.retired_key_versions))
    })
    .await?;
    let payment_report = reseal_service("payment-service", &progress, async |step| {
        let request = payment_pb::ResealPersonalDataRequest {
            request_id: id("payment", step),
            batch_size,
        };
        let a = payment.reseal_personal_data(request).await?.into_inner();
        Ok((a.rewritten_values, a.done, a.retired_key_versions))
    })
    .await?;
    progress.finish_and_clear();
    let all_done = binding_report["done"] == true && payment_report["done"] == true;
    print(
        args,
        &json!({"binding-service": binding_report, "payment-service": payment_report}),
    );
    if !all_done {
        eprintln!(
            "gongji-admin: values under an older key remain; load the newest key in every instance, then run again"
        );
    }
    Ok(if all_done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Steps of one service's re-sealing until it is done, or stuck behind a value an instance
/// still writes under an older key (a step that rewrites nothing and is not done).
async fn reseal_service(
    service: &str,
    progress: &indicatif::ProgressBar,
    mut step: impl AsyncFnMut(usize) -> anyhow::Result<(i64, bool, Vec<i64>)>,
) -> anyhow::Result<Value> {
    let (mut rewritten, mut retired, mut done) = (0_i64, Vec::new(), false);
    for n in 0..MAX_RESEAL_STEPS {
        let (values, finished, versions) = step(n).await?;
        rewritten += values;
        retired.extend(versions);
        done = finished;
        progress.set_message(format!("{service}: {rewritten} values re-sealed"));
        progress.tick();
        if done || values == 0 {
            break;
        }
    }
    Ok(json!({"rewritten_values": rewritten, "done": done, "retired_key_versions": retired}))
}

async fn show(args: &Args, what: &Show) -> anyhow::Result<Value> {
    let id = |raw: &str| masked(raw, args.show_id_numbers);
    Ok(match what {
        Show::Account { holder_id_number } => {
            let mut client = AccountServiceClient::new(channel(args, &args.payment_addr).await?);
            let a = client
                .get_account(GetAccountRequest {
                    holder_id_number: holder_id_number.clone(),
                })
                .await?
                .into_inner()
                .account
                .unwrap_or_default();
            json!({
                "holder_id_number": id(&a.holder_id_number),
                "region_code": a.region_code,
                "current_year_balance": a.current_year_balance,
                "prior_years_balance": a.prior_years_balance,
                "usable_for_family_balance": a.usable_for_family_balance,
            })
        }
        Show::Binding { binding_id } => {
            let mut client = BindingServiceClient::new(channel(args, &args.binding_addr).await?);
            let b = client
                .get_binding(GetBindingRequest {
                    binding_id: binding_id.clone(),
                })
                .await?
                .into_inner()
                .binding
                .unwrap_or_default();
            json!({
                "binding_id": b.binding_id,
                "authorizer_id_number": id(&b.authorizer_id_number),
                "beneficiary_id_number": id(&b.beneficiary_id_number),
                "state": b.state().as_str_name(),
                "kind": b.kind().as_str_name(),
                "version": b.version,
            })
        }
        Show::Payment { payment_id } => {
            let mut client = PremiumServiceClient::new(channel(args, &args.payment_addr).await?);
            let p = client
                .get_premium_payment(GetPremiumPaymentRequest {
                    payment_id: payment_id.clone(),
                })
                .await?
                .into_inner()
                .payment
                .unwrap_or_default();
            let quote = p.quote.clone().unwrap_or_default();
            json!({
                "payment_id": p.payment_id,
                "payer_id_number": id(&p.payer_id_number),
                "beneficiary_id_number": id(&p.beneficiary_id_number),
                "state": p.state().as_str_name(),
                "coverage_year": quote.coverage_year,
                "premium": quote.premium,
                "account_part": quote.account_part,
                "other_means_part": quote.other_means_part,
                "binding_id": p.binding_id,
            })
        }
    })
}

/// An ID number as the operator may see it: masked (3405**********123X) unless asked.
fn masked(raw: &str, whole: bool) -> String {
    if whole {
        return raw.to_owned();
    }
    match IdNumber::parse(raw) {
        Ok(id) => id.masked(),
        // Not one we can parse: nothing of it but its length.
        Err(_) => "*".repeat(raw.chars().count()),
    }
}

/// A spinner on standard error for long batches; hidden for `--json` or off a terminal.
fn progress_bar(args: &Args) -> indicatif::ProgressBar {
    let visible = !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if visible {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// `value` as JSON, or as `key: value` lines.
fn print(args: &Args, value: &Value) {
    if args.json {
        println!("{value}");
        return;
    }
    if let Value::Object(fields) = value {
        for (key, v) in fields {
            match v {
                Value::String(s) => println!("{key}: {s}"),
                Value::Array(items) if items.is_empty() => println!("{key}: none"),
                Value::Array(items) => {
                    println!("{key}:");
                    for item in items {
                        println!("  {item}");
                    }
                }
                other => println!("{key}: {other}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_are_masked_unless_asked() {
        assert_eq!(masked("34050419870720002X", true), "34050419870720002X");
        let id = "340504198707200020";
        assert_eq!(masked(id, false), "3405**********0020");
        assert_eq!(masked("not-an-id", false), "*********");
    }
}
