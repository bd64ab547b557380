//! `probe_tcp` and `probe_udp`: from inside a managed namespace, send a message to an echo
//! service and read it back. The socket is created on a thread that entered the namespace
//! (a socket stays in the namespace it was created in); the exchange runs on the runtime.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tsim_protocol::OpResult;
use tsim_protocol::ops::{ProbeEcho, ProbeEchoResult, ProbeStatus, Transport};

use super::{OpCtx, explain};
use crate::base::error::HelperError;

const DEFAULT_MESSAGE: &str = "tsim";
const MAX_MESSAGE: usize = 65000;
const DEFAULT_TIMEOUT_MS: u32 = 1000;
const MAX_TIMEOUT_MS: u32 = 60_000;

/// What a failed socket call means for the probe.
fn status_of(e: &io::Error) -> Option<ProbeStatus> {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => Some(ProbeStatus::Refused),
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH) => Some(ProbeStatus::Unreachable),
        Some(libc::ETIMEDOUT) => Some(ProbeStatus::Timeout),
        _ => None,
    }
}

struct Outcome {
    status: ProbeStatus,
    local: Option<SocketAddr>,
    reply: Vec<u8>,
    detail: Option<String>,
}

impl Outcome {
    fn failed(status: ProbeStatus, local: Option<SocketAddr>, detail: String) -> Self {
        Self {
            status,
            local,
            reply: Vec::new(),
            detail: Some(detail),
        }
    }
}

pub(super) async fn echo(
    ctx: &OpCtx<'_>,
    args: ProbeEcho,
    proto: Transport,
) -> Result<OpResult, HelperError> {
    let message = args.message.unwrap_or_else(|| DEFAULT_MESSAGE.to_owned());
    if message.is_empty() || message.len() > MAX_MESSAGE {
        return Err(HelperError::InvalidArgument(format!(
            "The message must be 1 to {MAX_MESSAGE} bytes, not {}",
            message.len()
        )));
    }
    let timeout_ms = args.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
        return Err(HelperError::InvalidArgument(format!(
            "timeout_ms must be 1 to {MAX_TIMEOUT_MS}, not {timeout_ms}"
        )));
    }
    if args.port == 0 {
        return Err(HelperError::InvalidArgument(
            "The destination port must be 1 to 65535, not 0".into(),
        ));
    }
    let ns = ctx.ns(&args.ns).await?;
    let dst = SocketAddr::new(args.dst.0, args.port);
    let src = args.src.map(|s| SocketAddr::new(s.0, 0));
    if src.is_some_and(|s| s.is_ipv4() != dst.is_ipv4()) {
        return Err(HelperError::InvalidArgument(format!(
            "The source and destination addresses are of different families ({} and {})",
            args.src.expect("checked").0,
            dst.ip()
        )));
    }
    let limit = Duration::from_millis(u64::from(timeout_ms));
    let bad_src = |e: io::Error| match e.kind() {
        io::ErrorKind::AddrNotAvailable => HelperError::InvalidArgument(format!(
            "{} is not an address of namespace {}",
            src.map(|s| s.ip().to_string()).unwrap_or_default(),
            ns.name
        )),
        _ => HelperError::Kernel(format!("Cannot open a socket in {}: {e}", ns.name)),
    };
    if args.explain && !dst.is_ipv4() {
        return Err(HelperError::InvalidArgument(format!(
            "explain traces IPv4 probes only, and {} is IPv6",
            dst.ip()
        )));
    }
    let session = match args.explain {
        true => Some(explain::Session::start(ctx).await?),
        false => None,
    };
    let tos = session.as_ref().map(|s| s.tos());
    let started = Instant::now();
    let sent = async {
        Ok::<_, HelperError>(match proto {
            Transport::Tcp => {
                let socket = ctx
                    .helper
                    .netns
                    .run_in(&ns.name, ns.ino, move || {
                        let s = if dst.is_ipv4() {
                            tokio::net::TcpSocket::new_v4()?
                        } else {
                            tokio::net::TcpSocket::new_v6()?
                        };
                        if let Some(tos) = tos {
                            s.set_tos_v4(tos)?;
                        }
                        if let Some(src) = src {
                            s.bind(src)?;
                        }
                        Ok::<_, io::Error>(s)
                    })
                    .await?
                    .map_err(bad_src)?;
                tcp(socket, dst, message.as_bytes(), limit).await
            }
            Transport::Udp => {
                let bind = src.unwrap_or_else(|| {
                    if dst.is_ipv4() {
                        SocketAddr::from(([0, 0, 0, 0], 0))
                    } else {
                        SocketAddr::from(([0u16; 8], 0))
                    }
                });
                let socket = ctx
                    .helper
                    .netns
                    .run_in(&ns.name, ns.ino, move || {
                        let s = std::net::UdpSocket::bind(bind)?;
                        s.set_nonblocking(true)?;
                        Ok::<_, io::Error>(s)
                    })
                    .await?
                    .map_err(bad_src)?;
                let socket = tokio::net::UdpSocket::from_std(socket)
                    .map_err(|e| HelperError::Internal(format!("Cannot use a UDP socket: {e}")))?;
                if let Some(tos) = tos {
                    socket.set_tos_v4(tos).map_err(|e| {
                        HelperError::Kernel(format!("Cannot mark the probe's packets: {e}"))
                    })?;
                }
                udp(socket, dst, message.as_bytes(), limit).await
            }
        })
    };
    // Whatever becomes of the probe, an explained one's tracing is read and removed.
    let outcome = tokio::select! {
        o = sent => o,
        _ = ctx.cancel.cancelled() => Err(HelperError::Cancelled),
    };
    let elapsed = started.elapsed();
    let explained = match session {
        Some(s) => Some(s.finish(ctx).await?),
        None => None,
    };
    let outcome = outcome?;
    let elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let reply =
        (!outcome.reply.is_empty()).then(|| String::from_utf8_lossy(&outcome.reply).into_owned());
    let result = ProbeEchoResult {
        status: outcome.status,
        local: outcome.local.map(|l| l.to_string()),
        reply,
        elapsed_us,
        detail: outcome.detail,
        explain: explained,
    };
    Ok(match proto {
        Transport::Tcp => OpResult::ProbeTcp(result),
        Transport::Udp => OpResult::ProbeUdp(result),
    })
}

async fn tcp(
    socket: tokio::net::TcpSocket,
    dst: SocketAddr,
    message: &[u8],
    limit: Duration,
) -> Outcome {
    let deadline = tokio::time::Instant::now() + limit;
    let mut stream = match tokio::time::timeout_at(deadline, socket.connect(dst)).await {
        Err(_) => {
            return Outcome::failed(ProbeStatus::Timeout, None, format!("no answer from {dst}"));
        }
        Ok(Err(e)) => {
            let status = status_of(&e).unwrap_or(ProbeStatus::Unreachable);
            return Outcome::failed(status, None, format!("connect to {dst}: {e}"));
        }
        Ok(Ok(s)) => s,
    };
    let local = stream.local_addr().ok();
    match tokio::time::timeout_at(deadline, stream.write_all(message)).await {
        Err(_) => {
            return Outcome::failed(ProbeStatus::Timeout, local, "sending timed out".into());
        }
        Ok(Err(e)) => {
            let status = status_of(&e).unwrap_or(ProbeStatus::Refused);
            return Outcome::failed(status, local, format!("send: {e}"));
        }
        Ok(Ok(())) => {}
    }
    let mut reply = Vec::with_capacity(message.len());
    let mut buf = vec![0u8; 16 * 1024];
    let mut detail = None;
    let mut timed_out = false;
    while reply.len() < message.len() {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => {
                timed_out = true;
                detail = Some(format!(
                    "{} of {} bytes came back in time",
                    reply.len(),
                    message.len()
                ));
                break;
            }
            Ok(Ok(0)) => {
                detail = Some(format!(
                    "the connection was closed after {} of {} bytes",
                    reply.len(),
                    message.len()
                ));
                break;
            }
            Ok(Ok(n)) => reply.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => {
                detail = Some(format!("receive: {e}"));
                break;
            }
        }
    }
    let status = if reply == message {
        ProbeStatus::Ok
    } else if reply.is_empty() && timed_out {
        ProbeStatus::Timeout
    } else {
        ProbeStatus::Mismatch
    };
    Outcome {
        status,
        local,
        reply,
        detail: if status == ProbeStatus::Ok {
            None
        } else {
            detail
        },
    }
}

async fn udp(
    socket: tokio::net::UdpSocket,
    dst: SocketAddr,
    message: &[u8],
    limit: Duration,
) -> Outcome {
    let deadline = tokio::time::Instant::now() + limit;
    if let Err(e) = socket.connect(dst).await {
        let status = status_of(&e).unwrap_or(ProbeStatus::Unreachable);
        return Outcome::failed(status, None, format!("connect to {dst}: {e}"));
    }
    let local = socket.local_addr().ok();
    if let Err(e) = socket.send(message).await {
        let status = status_of(&e).unwrap_or(ProbeStatus::Unreachable);
        return Outcome::failed(status, local, format!("send to {dst}: {e}"));
    }
    let mut buf = vec![0u8; 64 * 1024];
    match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
        Err(_) => Outcome::failed(ProbeStatus::Timeout, local, format!("no answer from {dst}")),
        Ok(Err(e)) => {
            let status = status_of(&e).unwrap_or(ProbeStatus::Unreachable);
            Outcome::failed(status, local, format!("receive from {dst}: {e}"))
        }
        Ok(Ok(n)) => {
            let reply = buf[..n].to_vec();
            let status = if reply == message {
                ProbeStatus::Ok
            } else {
                ProbeStatus::Mismatch
            };
            Outcome {
                status,
                local,
                reply,
                detail: None,
            }
        }
    }
}
