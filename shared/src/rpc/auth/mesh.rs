//! The identity a service-mesh sidecar vouches for. Trusted only when the service's port is
//! reachable through the sidecar alone: otherwise anyone could set the header.

use http::HeaderMap;

/// Which sidecar's header carries the caller's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MeshHeader {
    /// Istio's `x-forwarded-client-cert`: the `URI=` (SPIFFE ID) of its last element.
    Istio,
    /// Linkerd's `l5d-client-id`.
    Linkerd,
}

/// Longest identity header read.
const MAX_HEADER_BYTES: usize = 4 * 1024;

impl MeshHeader {
    /// The caller's identity, if the header is there and well formed.
    pub fn identity(self, headers: &HeaderMap) -> Option<String> {
        let name = match self {
            Self::Istio => "x-forwarded-client-cert",
            Self::Linkerd => "l5d-client-id",
        };
        let value = headers.get(name)?.to_str().ok()?;
        if value.len() > MAX_HEADER_BYTES {
            return None;
        }
        let identity = match self {
            // Each proxy appends an element; the last is the immediate client's.
            Self::Istio => value
                .rsplit(',')
                .next()?
                .split(';')
                .find_map(|field| field.trim().strip_prefix("URI="))?
                .trim_matches('"')
                .to_owned(),
            Self::Linkerd => value.trim().to_owned(),
        };
        (!identity.is_empty()).then_some(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn istio_takes_the_last_elements_uri() {
        let h = headers(
            "x-forwarded-client-cert",
            "By=spiffe://a/x;URI=spiffe://a/ns/first,By=spiffe://a/y;Hash=ab;Subject=\"\";URI=spiffe://a/ns/channels/sa/wechat",
        );
        assert_eq!(
            MeshHeader::Istio.identity(&h).as_deref(),
            Some("spiffe://a/ns/channels/sa/wechat")
        );
        assert_eq!(MeshHeader::Linkerd.identity(&h), None);
    }

    #[test]
    fn linkerd_takes_the_client_id() {
        let h = headers(
            "l5d-client-id",
            "wechat.channels.serviceaccount.identity.linkerd.cluster.local",
        );
        assert_eq!(
            MeshHeader::Linkerd.identity(&h).as_deref(),
            Some("wechat.channels.serviceaccount.identity.linkerd.cluster.local")
        );
    }
}
