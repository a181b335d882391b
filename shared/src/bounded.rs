//! A stream that stops reading at a limit. A rotation reads a few KiB from a database or cache
//! server; drivers buffer whatever length a message declares, so a hostile server (single-user
//! secrets name their own host) could otherwise make the function hold gigabytes.

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Fails with an error naming the limit once `limit` bytes were read (give or take one read).
pub struct Bounded<S> {
    inner: S,
    left: usize,
    limit: usize,
}

impl<S> Bounded<S> {
    pub fn new(inner: S, limit: usize) -> Self {
        Self {
            inner,
            left: limit,
            limit,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the server sent more than {} KiB on one session, where a rotation reads a few KiB",
                self.limit >> 10
            ))));
        }
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        self.left = self.left.saturating_sub(read);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reading_past_the_limit_is_an_error_naming_it() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let _ = server.write_all(&vec![7u8; 8 * 1024]).await;
        });
        let mut bounded = Bounded::new(client, 2048);
        let mut sink = Vec::new();
        let err = bounded.read_to_end(&mut sink).await.unwrap_err();
        assert!(
            sink.len() >= 2048 && sink.len() < 8 * 1024,
            "{}",
            sink.len()
        );
        assert!(err.to_string().contains("more than 2 KiB"), "{err}");
    }
}
