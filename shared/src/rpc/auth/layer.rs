//! The tower layer that authenticates every call before its handler runs, and answers a
//! refusal itself, as an AIP-193 error under the service's domain.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

use super::{Auth, Caller, is_open};

/// Wraps a router: authenticates each call and puts its [`Caller`] in the extensions.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Auth,
    domain: &'static str,
}

impl AuthLayer {
    pub fn new(auth: Auth, domain: &'static str) -> Self {
        Self { auth, domain }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        crate::rpc::connection::mark_called(request.extensions());
        let mut scope = None;
        if !is_open(&path) {
            let caller = match &self.layer.auth {
                Auth::Off => Ok(Caller::insecure()),
                Auth::Enforced(auth) => auth.check(
                    path.trim_start_matches('/'),
                    request.headers(),
                    request.extensions(),
                ),
            };
            match caller {
                Ok(caller) => {
                    scope = Some(caller.clone());
                    request.extensions_mut().insert(caller);
                }
                Err(error) => {
                    tracing::info!(rpc = %path, reason = error.reason(), "call refused");
                    let response = error.into_status(self.layer.domain).into_http();
                    return Box::pin(async move { Ok(response) });
                }
            }
        }
        let call = self.inner.call(request);
        Box::pin(super::in_scope(scope, call))
    }
}
