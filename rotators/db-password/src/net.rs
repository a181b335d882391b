//! The sockets and TLS sessions every database login goes through.
//!
//! Each login is a handful of small writes and reads; with Nagle's algorithm on, each small write
//! after the first waits for the peer's delayed ACK (~40 ms on Linux), which made a TLS login cost
//! several times libpq's. So every socket is opened here with `TCP_NODELAY`, and the rustls client
//! config (roots parsed once) is built once per process and shared by every login.

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
pub use shared::bounded::Bounded;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The client config for every TLS login: the public roots plus the PEM bundle
/// (`shared::tls`, the trust rule every rotator shares).
pub fn client_config(ca_pem: &[u8]) -> Result<Arc<ClientConfig>, String> {
    shared::tls::client_config("DB CA bundle", Some(ca_pem))
}

/// The most one session reads from its server. A rotation's answers are a few KiB; a server
/// sending more is hostile (tokio-postgres buffers a message of any declared length, up to 2 GiB).
pub const SESSION_READ_LIMIT: usize = 8 << 20;

/// A TCP connection to `host:port` with `TCP_NODELAY` set before the first byte is sent, reading
/// at most `SESSION_READ_LIMIT` bytes.
pub async fn connect(host: &str, port: u16) -> std::io::Result<Bounded<TcpStream>> {
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(Bounded::new(stream, SESSION_READ_LIMIT))
}

/// Starts TLS on `stream`, verifying the certificate against `host`.
pub async fn start_tls<S>(
    config: Arc<ClientConfig>,
    host: &str,
    stream: S,
) -> std::io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("host {host:?} is not a valid TLS server name: {e}"),
        )
    })?;
    TlsConnector::from(config).connect(name, stream).await
}

/// tokio-postgres's TLS hook over the shared config.
pub struct PgTls {
    pub config: Arc<ClientConfig>,
    pub host: String,
}

impl<S> tokio_postgres::tls::TlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            start_tls(self.config, &self.host, stream)
                .await
                .map(PgTlsStream)
        })
    }
}

pub struct PgTlsStream<S>(TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for PgTlsStream<S> {
    /// No channel binding: the certificate is already verified against the host name, which is
    /// what binding would add; the server accepts plain SCRAM-SHA-256 from a TLS client.
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        tokio_postgres::tls::ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
