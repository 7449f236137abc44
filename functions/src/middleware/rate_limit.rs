//! Per-client request limits (`AI_TEAM_RATE_LIMIT_PER_MINUTE`): a GCRA
//! limiter per client address, 429 with `Retry-After` past it.

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
}

impl ClientLimiter {
    pub fn per_minute(n: NonZeroU32) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(n))),
            seen: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// The peer address; behind a proxy or an API gateway (no socket peer),
/// the first `X-Forwarded-For` hop.
fn client_ip(req: &Request) -> IpAddr {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        return addr.ip();
    }
    req.headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|ip| ip.trim().parse().ok())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

pub async fn limit(State(limiter): State<ClientLimiter>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    // Forget idle clients now and then so the map stays small.
    if limiter.seen.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
        limiter.limiter.retain_recent();
    }
    match limiter.limiter.check_key(&client_ip(&req)) {
        Ok(()) => next.run(req).await,
        Err(not_until) => ApiError::RateLimited {
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        }
        .into_response(),
    }
}
