//! The HTTP/1.1 server: our own accept loop over hyper, because `axum::serve` has no
//! head-read timeout, no idle timeout and no cap on connections.
//!
//! Each connection is in one of three phases, kept by its `Tracker`:
//! - **head**: waiting for a request head, from the accept and again from the first byte that
//!   arrives after a response. Closed when the head is not complete `header_read_timeout` after
//!   the phase began, however many bytes trickle in meanwhile.
//! - **request**: from hyper handing the parsed head to the service until the response body is
//!   sent (an event stream included). Producing the response head is bounded by the router's
//!   request timeout (`super::request_timeout`), not here.
//! - **idle**: after a response until the next byte arrives. Closed after `idle_timeout`.
//!
//! The socket is wrapped to note arriving bytes, the service marks the request phase, and a
//! watchdog future beside the connection drops it (closing the socket) when the current phase
//! outlives its limit.
//!
//! The cap: every connection holds a semaphore permit. When none is free, the connection idle
//! the longest is shed (closed) so that the new client is served; when no connection is idle,
//! the loop stops accepting until a permit frees, and the kernel's backlog holds the rest.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::Config;

/// Connection cap when none is configured and the open-file limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// File descriptors kept free of client connections: the database pool, outbound HTTP, logs.
pub const RESERVED_FDS: usize = 256;
/// How often a full server looks again for an idle connection to shed.
const SHED_RETRY: Duration = Duration::from_millis(100);
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `None`: no limit.
    pub header_read_timeout: Option<Duration>,
    /// `None`: no limit.
    pub idle_timeout: Option<Duration>,
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The configured limits; an unset cap is `min(10_000, open-file limit − 256)`. Raises the
    /// process's soft open-file limit to its hard limit first.
    pub fn from_config(config: &Config) -> ConnectionLimits {
        let open_files = raise_open_file_limit();
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        ConnectionLimits {
            header_read_timeout: nonzero(config.header_read_timeout),
            idle_timeout: nonzero(config.idle_timeout),
            max_connections: config.max_connections.unwrap_or_else(|| default_max_connections(open_files)),
        }
    }
}

/// `min(10_000, open_files − 256)`, but never below half the open-file limit (for tiny limits).
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    match open_files.map(|n| usize::try_from(n).unwrap_or(usize::MAX)) {
        Some(n) => n.saturating_sub(RESERVED_FDS).max(n / 2).clamp(1, DEFAULT_MAX_CONNECTIONS),
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force
/// (`None` when unlimited or unknown).
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every unix
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            // Refused on some systems (macOS caps it below an infinite hard limit): keep the soft one.
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets requests
/// in flight finish, closes idle connections and returns when every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let mut http = http1::Builder::new();
    // hyper's own header timer also runs during keep-alive idle time; the watchdog does both.
    http.header_read_timeout(None).keep_alive(true);
    let http = Arc::new(http);
    let (stop, stopping) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS…: back off and try again, never give up.
                    tracing::warn!(error = %e, "accept failed");
                    metrics::counter!("agentmarket_http_accept_errors_total").increment(1);
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let permit = tokio::select! {
            permit = acquire(&permits, &registry) => permit,
            _ = &mut shutdown => break,
        };
        let tracker = Arc::new(Tracker::new());
        let held = (permit, registry.add(tracker.clone()));
        let conn = connection(stream, addr, router.clone(), http.clone(), limits, tracker, stopping.clone());
        tokio::spawn(async move {
            conn.await;
            drop(held);
        });
    }
    drop(listener);
    drop(stopping);
    stop.send_replace(());
    // Every connection task holds a receiver; they are all gone once the last one closes.
    stop.closed().await;
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

/// A free permit; at the cap, sheds the connection idle the longest and waits for its permit,
/// looking again every `SHED_RETRY` (a marked connection may have turned busy; another may
/// have gone idle).
async fn acquire(permits: &Arc<Semaphore>, registry: &Registry) -> OwnedSemaphorePermit {
    loop {
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return permit;
        }
        if registry.shed_longest_idle() {
            metrics::counter!("agentmarket_http_connections_shed_total").increment(1);
        }
        if let Ok(Ok(permit)) = tokio::time::timeout(SHED_RETRY, permits.clone().acquire_owned()).await {
            return permit;
        }
    }
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    router: Router,
    http: Arc<http1::Builder>,
    limits: ConnectionLimits,
    tracker: Arc<Tracker>,
    mut stopping: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Watched { io: stream, tracker: tracker.clone() });
    let marks = tracker.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        let in_request = InRequest::begin(marks.clone());
        let response = router.clone().oneshot(req);
        async move {
            // The request lasts until its body is sent (an event stream may run for hours),
            // not only until the response head is ready: only then is the connection idle.
            let response = response.await;
            response.map(|r| r.map(|body| axum::body::Body::new(UntilSent { body, _in_request: in_request })))
        }
    });
    let mut conn = pin!(http.serve_connection(io, service));
    let mut watchdog = pin!(watchdog(&tracker, limits));
    let mut draining = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%addr, error = %e, "connection ended with an error");
                }
                return;
            }
            reason = watchdog.as_mut() => {
                tracing::debug!(%addr, reason, "closing connection");
                metrics::counter!("agentmarket_http_connections_closed_total", "reason" => reason).increment(1);
                return; // dropping `conn` closes the socket
            }
            _ = stopping.changed(), if !draining => {
                draining = true;
                // Closes the connection if idle, else after the response in flight.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves when the connection's current phase has outlived its limit, with the reason.
async fn watchdog(tracker: &Tracker, limits: ConnectionLimits) -> &'static str {
    loop {
        let (phase, since) = tracker.phase();
        let (limit, reason) = match phase {
            Phase::Head => (limits.header_read_timeout, "header_read_timeout"),
            Phase::Idle if tracker.shed.load(Ordering::Acquire) => return "shed",
            Phase::Idle => (limits.idle_timeout, "idle_timeout"),
            Phase::Request => (None, ""),
        };
        // A phase change or a shed request wakes us (a permit is stored if it comes early).
        let woken = tracker.wake.notified();
        match limit {
            Some(limit) => {
                let deadline = since + limit;
                if Instant::now() >= deadline {
                    return reason;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = woken => {}
                }
            }
            None => woken.await,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head = 0,
    Request = 1,
    Idle = 2,
}

/// One connection's phase and when it began, packed in one word (`ms since accept << 2 | phase`)
/// so the watchdog and the shedder never see one without the other.
struct Tracker {
    accepted: Instant,
    state: AtomicU64,
    /// Set by the accept loop at the cap: close as soon as (or whenever next) idle.
    shed: AtomicBool,
    wake: Notify,
}

impl Tracker {
    fn new() -> Tracker {
        Tracker {
            accepted: Instant::now(),
            state: AtomicU64::new(Phase::Head as u64),
            shed: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn pack(&self, phase: Phase) -> u64 {
        let ms = u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX >> 2);
        (ms << 2) | phase as u64
    }

    fn phase(&self) -> (Phase, Instant) {
        let word = self.state.load(Ordering::Acquire);
        let phase = match word & 3 {
            0 => Phase::Head,
            1 => Phase::Request,
            _ => Phase::Idle,
        };
        (phase, self.accepted + Duration::from_millis(word >> 2))
    }

    /// Bytes arrived: an idle connection starts waiting for a head (whose timeout is shorter).
    fn bytes_arrived(&self) {
        let word = self.state.load(Ordering::Acquire);
        if word & 3 == Phase::Idle as u64
            && self.state.compare_exchange(word, self.pack(Phase::Head), Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.wake.notify_one();
        }
    }
}

/// The request phase, from the service call until the response is produced (or dropped).
struct InRequest(Arc<Tracker>);

impl InRequest {
    fn begin(tracker: Arc<Tracker>) -> InRequest {
        tracker.state.store(tracker.pack(Phase::Request), Ordering::Release);
        InRequest(tracker)
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.state.store(self.0.pack(Phase::Idle), Ordering::Release);
        self.0.wake.notify_one();
    }
}

/// A response body that keeps its connection in the request phase until it is sent (or dropped).
struct UntilSent {
    body: axum::body::Body,
    _in_request: InRequest,
}

impl hyper::body::Body for UntilSent {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The open connections, for shedding idle ones at the cap.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Tracker>>>,
}

impl Registry {
    fn add(self: &Arc<Self>, tracker: Arc<Tracker>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tracker);
        Registered { registry: self.clone(), id }
    }

    /// Marks the connection idle the longest to be closed; false when none is idle.
    fn shed_longest_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let longest = open
            .values()
            .filter(|t| !t.shed.load(Ordering::Acquire))
            .filter_map(|t| match t.phase() {
                (Phase::Idle, since) => Some((since, t)),
                _ => None,
            })
            .min_by_key(|(since, _)| *since);
        match longest {
            Some((_, tracker)) => {
                tracker.shed.store(true, Ordering::Release);
                tracker.wake.notify_one();
                true
            }
            None => false,
        }
    }
}

struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

/// The client socket, noting when bytes arrive.
struct Watched {
    io: TcpStream,
    tracker: Arc<Tracker>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.tracker.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cap_leaves_room_below_the_open_file_limit() {
        assert_eq!(default_max_connections(None), 10_000);
        assert_eq!(default_max_connections(Some(1_048_576)), 10_000);
        assert_eq!(default_max_connections(Some(10_256)), 10_000);
        assert_eq!(default_max_connections(Some(4_096)), 3_840);
        assert_eq!(default_max_connections(Some(1_024)), 768);
        assert_eq!(default_max_connections(Some(300)), 150);
        assert_eq!(default_max_connections(Some(0)), 1);
    }

    #[tokio::test]
    async fn phases_and_their_deadlines() {
        let ms = Duration::from_millis;
        let limits =
            ConnectionLimits { header_read_timeout: Some(ms(200)), idle_timeout: Some(ms(3_000)), max_connections: 1 };
        let tracker = Arc::new(Tracker::new());
        assert_eq!(watchdog(&tracker, limits).await, "header_read_timeout");
        assert!(tracker.accepted.elapsed() >= ms(200));

        // In a request, no deadline; after it, the idle one; a byte turns idle into head.
        let request = InRequest::begin(tracker.clone());
        assert!(tokio::time::timeout(ms(500), watchdog(&tracker, limits)).await.is_err(), "no deadline in a request");
        drop(request);
        let idle_from = Instant::now();
        let byte = async {
            tokio::time::sleep(ms(100)).await;
            tracker.bytes_arrived();
            std::future::pending::<()>().await
        };
        tokio::select! {
            reason = watchdog(&tracker, limits) => assert_eq!(reason, "header_read_timeout"),
            _ = byte => unreachable!(),
        }
        let closed_after = idle_from.elapsed();
        assert!(closed_after >= ms(300) && closed_after < ms(2_000), "closed {closed_after:?} after the response");

        // A connection shed mid-request closes as soon as it is idle.
        let request = InRequest::begin(tracker.clone());
        tracker.shed.store(true, Ordering::Release);
        tracker.wake.notify_one();
        assert!(tokio::time::timeout(ms(300), watchdog(&tracker, limits)).await.is_err(), "not in a request");
        drop(request);
        assert_eq!(tokio::time::timeout(ms(300), watchdog(&tracker, limits)).await, Ok("shed"));
    }
}
