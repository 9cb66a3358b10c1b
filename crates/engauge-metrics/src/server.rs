//! The scrape endpoint: a std `TcpListener` on a background thread answering `GET /metrics`,
//! `/healthz` and `/readyz`, each connection on a thread of its own.
//!
//! Connections are few (Prometheus, probes, a curious human), so a thread each is simpler than
//! an event loop and keeps a slow client from delaying a probe. Threads are kept once started
//! and reused for later connections: starting one per scrape cost more than rendering (a fresh
//! thread's first allocations fault in new pages). A connection goes to an idle thread when
//! there is one and to a new thread otherwise, so there are never more threads than connections
//! were open at once. Each connection is bounded in time (read and write timeouts) and size
//! ([`MAX_HEAD_BYTES`]), and at most [`MAX_CONNECTIONS`] are served at once; beyond that a
//! client gets a 503 straight away.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus::Registry;

use crate::http::{HeadError, MAX_HEAD_BYTES, Method, Response, parse_request, read_head};
use crate::{Health, TEXT_CONTENT_TYPE, render};

/// Connections served at the same time.
pub(crate) const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing a response may stall before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running metrics endpoint; stops on [`MetricsServer::shutdown`] or when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Context {
    registry: Registry,
    health: Arc<Health>,
    active: AtomicUsize,
}

impl MetricsServer {
    /// Binds `addr` and serves from a background thread. Bind `127.0.0.1:0` to get a free port;
    /// [`MetricsServer::local_addr`] tells which.
    pub fn start(
        addr: SocketAddr,
        registry: Registry,
        health: Arc<Health>,
    ) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let context = Arc::new(Context {
            registry,
            health,
            active: AtomicUsize::new(0),
        });
        let accept_thread = std::thread::Builder::new()
            .name("engauge-metrics".to_owned())
            .spawn({
                let stopping = stopping.clone();
                move || accept_loop(&listener, &stopping, &context)
            })?;
        Ok(MetricsServer {
            local_addr,
            stopping,
            accept_thread: Some(accept_thread),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits for the accept thread to end. Requests already
    /// being answered finish on their own threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.accept_thread.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        // `accept` blocks; one connection of our own wakes it to see the flag. If even that
        // fails the thread is left to end with the process rather than hanging the caller.
        if TcpStream::connect_timeout(&wake_address(self.local_addr), Duration::from_secs(1))
            .is_ok()
        {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where to connect to reach a listener bound to `addr` (a wildcard becomes loopback).
fn wake_address(addr: SocketAddr) -> SocketAddr {
    let mut target = addr;
    if addr.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    target
}

fn accept_loop(listener: &TcpListener, stopping: &AtomicBool, context: &Arc<Context>) {
    let (handoff, waiting) = mpsc::channel::<TcpStream>();
    let pool = Arc::new(Pool {
        waiting: Mutex::new(waiting),
        idle: AtomicUsize::new(0),
    });
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            // Per-connection failures (reset before accept, out of descriptors) do not stop the
            // endpoint; the next accept tries again.
            continue;
        };
        if context.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            context.active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = write_response(&stream, &Response::text(503, "too many connections"), true);
            continue;
        }
        // Reserve an idle thread; each reservation is matched by exactly one handed-over
        // connection, so a waiting connection always has a thread about to take it.
        let reserved = pool
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if reserved {
            if let Err(mpsc::SendError(stream)) = handoff.send(stream) {
                drop(stream);
                context.active.fetch_sub(1, Ordering::SeqCst);
            }
            continue;
        }
        let (context_for_thread, pool_for_thread) = (context.clone(), pool.clone());
        let spawned = std::thread::Builder::new()
            .name("engauge-metrics-conn".to_owned())
            .spawn(move || worker(stream, &context_for_thread, &pool_for_thread));
        if spawned.is_err() {
            context.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
    // Dropping `handoff` ends every idle worker.
}

/// The connection threads kept for reuse.
#[derive(Debug)]
struct Pool {
    /// Connections handed to an idle thread; idle threads take turns waiting on it.
    waiting: Mutex<mpsc::Receiver<TcpStream>>,
    /// Threads waiting for a connection and not yet reserved by the accept loop.
    idle: AtomicUsize,
}

/// Serves `first`, then whatever the accept loop hands over, until the endpoint stops.
fn worker(first: TcpStream, context: &Context, pool: &Pool) {
    let mut next = Some(first);
    while let Some(stream) = next.take() {
        let slot = ActiveSlot(&context.active);
        // Errors here are the client's (gone, too slow); nothing to do but close.
        let _ = serve_connection(stream, context);
        // Idle before the slot is given back: the accept loop never sees a free slot without
        // this thread to take it, so it starts no thread it does not need.
        pool.idle.fetch_add(1, Ordering::SeqCst);
        drop(slot);
        // The receiver is plain data; a poisoned lock (nothing panics while holding it) is
        // still usable, and this thread must not leave with its idle count taken.
        next = pool
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv()
            .ok();
    }
}

/// Gives a connection slot back when the connection's thread ends, even by panic.
struct ActiveSlot<'a>(&'a AtomicUsize);

impl Drop for ActiveSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_connection(mut stream: TcpStream, context: &Context) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let head = match read_head(&mut stream) {
        Ok(head) => head,
        Err(HeadError::Empty | HeadError::Io) => return Ok(()),
        Err(HeadError::Truncated) => {
            return write_response(&stream, &Response::text(400, "bad request"), true);
        }
        Err(HeadError::TooLarge) => {
            let body = format!("request head larger than {MAX_HEAD_BYTES} bytes");
            return write_response(&stream, &Response::text(431, body), true);
        }
        Err(HeadError::TimedOut) => {
            return write_response(&stream, &Response::text(408, "request timeout"), true);
        }
    };
    let (response, with_body) = match parse_request(&head) {
        Ok(request) => (route(request.path, context), request.method == Method::Get),
        Err(refusal) => (refusal.response(), true),
    };
    write_response(&stream, &response, with_body)
}

fn route(path: &str, context: &Context) -> Response {
    match path {
        "/metrics" => match render(&context.registry) {
            Ok(text) => Response {
                status: 200,
                content_type: TEXT_CONTENT_TYPE,
                body: text,
            },
            Err(error) => Response::text(500, format!("failed to render metrics: {error}")),
        },
        "/healthz" => {
            if context.health.is_live() {
                Response::text(200, "ok")
            } else {
                Response::text(503, "not live")
            }
        }
        "/readyz" => match context.health.readiness() {
            Ok(()) => Response::text(200, "ready"),
            Err(reason) => Response::text(503, format!("not ready: {reason}")),
        },
        _ => Response::text(404, "not found"),
    }
}

fn write_response(mut stream: &TcpStream, response: &Response, with_body: bool) -> io::Result<()> {
    stream.write_all(&response.to_bytes(with_body))?;
    stream.flush()?;
    // Half-close so the client sees the end of the response even if it sent more than we read.
    stream.shutdown(Shutdown::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connects");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("writes");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("reads");
        out
    }

    #[test]
    fn reuses_threads_and_a_slow_client_does_not_hold_up_a_probe() {
        let server = MetricsServer::start(
            "127.0.0.1:0".parse().expect("addr"),
            Registry::new(),
            Arc::new(Health::new()),
        )
        .expect("starts");
        let addr = server.local_addr();
        // Sequential requests: each is answered (by threads kept from earlier ones).
        for _ in 0..20 {
            assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
        }
        // Two clients that connect and say nothing hold two threads until their read timeout
        // (then the server answers them 408). A probe meanwhile must get a thread of its own:
        // its answer comes while the silent clients still have none. Queued behind one of
        // their threads, it would be answered only after that client's 408.
        let silent: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(addr).expect("connects"))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
        for s in &silent {
            s.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 64];
            let unanswered = matches!(
                (&*s).read(&mut buf),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            );
            assert!(unanswered, "the probe waited for a silent client's thread");
        }
        assert!(get(addr, "/nowhere").starts_with("HTTP/1.1 404"));
        drop(silent);
        server.shutdown();
    }
}
