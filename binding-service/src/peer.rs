//! The call binding-service makes to payment-service: the authorizer's usable balance, as
//! the use cases' [`Balances`].

use std::time::Duration;

use crate::app::{Balances, PeerError};
use gongji_proto::payment::v1::{GetAccountRequest, account_service_client::AccountServiceClient};
use gongji_shared::{
    IdNumber, Money,
    rpc::peer::{self, PeerChannel, PeerInterceptor},
};
use tonic::{Code, codegen::InterceptedService, transport::Endpoint};

/// A lazily connected client of payment-service's AccountService.
#[derive(Clone)]
pub struct PaymentPeer {
    client: AccountServiceClient<InterceptedService<PeerChannel, PeerInterceptor>>,
}

impl PaymentPeer {
    /// Builds the client; connects on first use.
    pub fn new(
        addr: &str,
        timeout_ms: u64,
        connect_timeout_ms: u64,
        credentials: PeerInterceptor,
        tls: Option<tonic::transport::ClientTlsConfig>,
        metrics: Option<gongji_shared::metrics::Metrics>,
    ) -> Result<Self, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(addr.to_owned())?
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(connect_timeout_ms))
            .tcp_nodelay(true);
        let channel = gongji_shared::rpc::tls::with_tls(endpoint, tls)?.connect_lazy();
        Ok(Self {
            client: AccountServiceClient::with_interceptor(
                peer::measured(channel, metrics),
                credentials,
            ),
        })
    }
}

impl Balances for PaymentPeer {
    /// The balance the holder's family may use; zero when the holder has no account.
    async fn usable_balance(&self, holder: &IdNumber) -> Result<Money, PeerError> {
        let request = GetAccountRequest {
            holder_id_number: holder.as_str().to_owned(),
        };
        match self.client.clone().get_account(request).await {
            Ok(response) => {
                let account = response.into_inner().account.unwrap_or_default();
                Money::parse(&account.usable_for_family_balance)
                    .map_err(|_| PeerError::Malformed("a balance that does not parse".to_owned()))
            }
            Err(status) if status.code() == Code::NotFound => Ok(Money::ZERO),
            Err(status) => {
                let what = format!("{:?}: {}", status.code(), status.message());
                Err(if gongji_shared::rpc::is_outage(status.code()) {
                    PeerError::Unavailable(what)
                } else {
                    PeerError::Failed(what)
                })
            }
        }
    }
}
