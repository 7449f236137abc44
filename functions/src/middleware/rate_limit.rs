//! Per-client request limits (`AI_TEAM_RATE_LIMIT_PER_MINUTE`): a GCRA
//! limiter per client address, 429 with `Retry-After` past it. The
//! address is one the client cannot choose: API Gateway's `sourceIp` on
//! Lambda, the socket peer, or behind `AI_TEAM_TRUSTED_PROXIES` proxies the
//! right-most `X-Forwarded-For` hop they did not write.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// The shared limiter; cheap to clone.
#[derive(Clone)]
pub struct ClientLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    seen: Arc<AtomicU64>,
    /// `AI_TEAM_TRUSTED_PROXIES`: proxy hops in front of this service.
    trusted_proxies: usize,
}

impl ClientLimiter {
    pub fn per_minute(n: NonZeroU32) -> Self {
        Self::new(n, 0)
    }

    /// Limits `n` requests a minute per client; `trusted_proxies` hops of
    /// `X-Forwarded-For`, counted from the right, were written by proxies
    /// this service trusts.
    pub fn new(n: NonZeroU32, trusted_proxies: usize) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(n))),
            seen: Arc::new(AtomicU64::new(0)),
            trusted_proxies,
        }
    }
}

/// An `X-Forwarded-For` hop: `203.0.113.7`, `203.0.113.7:52345` (Azure's
/// front end adds the port), `[2001:db8::1]:443`, `2001:db8::1`.
fn hop_ip(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The client address by `X-Forwarded-For`, when `trusted` proxies (at
/// least one) appended to it: the right-most hop no trusted proxy wrote,
/// i.e. the `trusted`-th from the right (each proxy appends the address
/// it saw; the nearest one is the socket peer and appears in no hop).
/// Hops to the left of it are the client's own words and are ignored.
/// A header with fewer hops than proxies gives its left-most hop.
pub fn forwarded_client(header: Option<&str>, trusted: usize) -> Option<IpAddr> {
    let hops: Vec<&str> = header?
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    if trusted == 0 || hops.is_empty() {
        return None;
    }
    let index = hops.len().saturating_sub(trusted);
    hop_ip(hops[index])
}

/// API Gateway's view of the caller on Lambda (`requestContext.http.sourceIp`
/// for HTTP APIs and function URLs, `identity.sourceIp` for REST APIs):
/// the address that opened the connection, which no header can change.
#[cfg(feature = "lambda")]
fn gateway_source_ip(req: &Request) -> Option<IpAddr> {
    use lambda_http::request::RequestContext;
    let source = match req.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(c) => c.http.source_ip.as_deref(),
        RequestContext::ApiGatewayV1(c) => c.identity.source_ip.as_deref(),
        _ => None,
    };
    source.and_then(hop_ip)
}

#[cfg(not(feature = "lambda"))]
fn gateway_source_ip(_req: &Request) -> Option<IpAddr> {
    None
}

/// The address to limit: on Lambda, API Gateway's `sourceIp`; behind
/// `trusted` proxies, the right-most untrusted `X-Forwarded-For` hop;
/// otherwise the socket peer. Without a peer (a gateway that gave no
/// source address), the gateway counts as the one trusted hop.
fn client_ip(req: &Request, trusted: usize) -> IpAddr {
    if let Some(ip) = gateway_source_ip(req) {
        return ip;
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => forwarded_client(forwarded, trusted).unwrap_or(peer.ip()),
        None => forwarded_client(forwarded, trusted.max(1)).unwrap_or(IpAddr::from([0, 0, 0, 0])),
    }
}

pub async fn limit(State(limiter): State<ClientLimiter>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    // Forget idle clients now and then so the map stays small.
    if limiter.seen.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
        limiter.limiter.retain_recent();
    }
    match limiter
        .limiter
        .check_key(&client_ip(&req, limiter.trusted_proxies))
    {
        Ok(()) => next.run(req).await,
        Err(not_until) => ApiError::RateLimited {
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_rightmost_hop_no_trusted_proxy_wrote() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let header = Some("6.6.6.6, 203.0.113.7, 10.0.0.2");
        assert_eq!(forwarded_client(header, 0), None, "no proxy trusted");
        assert_eq!(forwarded_client(header, 1), Some(ip("10.0.0.2")));
        assert_eq!(forwarded_client(header, 2), Some(ip("203.0.113.7")));
        assert_eq!(forwarded_client(header, 9), Some(ip("6.6.6.6")));
        assert_eq!(
            forwarded_client(Some("203.0.113.7:52345"), 1),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            forwarded_client(Some("[2001:db8::1]:443"), 1),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(forwarded_client(Some("not-an-ip"), 1), None);
        assert_eq!(forwarded_client(None, 1), None);
    }
}
