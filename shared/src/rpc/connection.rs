//! Accepted connections: TCP_NODELAY on each (`serve_with_incoming` ignores the builder's
//! TCP settings, and without it a call can stall ~40 ms on Nagle and delayed ACKs), and a
//! deadline for the first call. A connection that has made no call by then is closed, so
//! idle connections cannot pile up to the descriptor limit and lock out real clients.
//! Connections that call stay, bounded by the server's maximum connection age.

use std::{
    collections::HashSet,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{LazyLock, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Sleep,
};
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

/// Most connections tracked as having called: one entry per open connection, at most.
const MAX_TRACKED: usize = 100_000;

/// The connections (local and peer address) that have made a call.
static CALLED: LazyLock<Mutex<HashSet<(SocketAddr, SocketAddr)>>> = LazyLock::new(Mutex::default);

fn called() -> std::sync::MutexGuard<'static, HashSet<(SocketAddr, SocketAddr)>> {
    CALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Notes that the connection a request came on has made a call.
pub fn mark_called(extensions: &http::Extensions) {
    let tls = extensions.get::<TlsConnectInfo<TcpConnectInfo>>();
    let Some(info) = extensions
        .get::<TcpConnectInfo>()
        .or_else(|| tls.map(TlsConnectInfo::get_ref))
    else {
        return;
    };
    if let (Some(local), Some(remote)) = (info.local_addr(), info.remote_addr()) {
        let mut called = called();
        if called.len() < MAX_TRACKED {
            called.insert((local, remote));
        }
    }
}

/// An accepted connection that must make its first call within a deadline.
pub struct FirstCallDeadline {
    inner: TcpStream,
    key: Option<(SocketAddr, SocketAddr)>,
    deadline: Pin<Box<Sleep>>,
    /// It has called: no deadline any more.
    calling: bool,
}

impl FirstCallDeadline {
    /// Wraps an accepted socket, with TCP_NODELAY on.
    pub fn new(inner: TcpStream, first_call_timeout_ms: u64) -> Self {
        if let Err(error) = inner.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
        let key = inner.local_addr().ok().zip(inner.peer_addr().ok());
        Self {
            inner,
            key,
            deadline: Box::pin(tokio::time::sleep(Duration::from_millis(
                first_call_timeout_ms,
            ))),
            calling: false,
        }
    }
}

impl Drop for FirstCallDeadline {
    fn drop(&mut self) {
        if let Some(key) = &self.key {
            called().remove(key);
        }
    }
}

impl AsyncRead for FirstCallDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.calling {
            let has_called = self.key.as_ref().is_some_and(|k| called().contains(k));
            if has_called {
                self.calling = true;
            } else if self.deadline.as_mut().poll(cx).is_ready() {
                // End of stream: the server closes the connection.
                tracing::info!(peer = ?self.key.map(|k| k.1), "closing a connection that made no call in time");
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FirstCallDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for FirstCallDeadline {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
