//! The malware-scanning hook: every upload is read back from the store through a [`Scanner`]
//! before its file row is committed, so an infected file is never listed or served.
//!
//! [`ClamAv`] talks to clamd over its socket with `INSTREAM`: the file streams through in
//! 64 KiB chunks, never whole in memory. clamd refuses streams longer than its
//! `StreamMaxLength` (25 MB by default, 4 GB at most): set it to at least
//! `storage.max_file_bytes`, or larger uploads fail as "scanner unavailable" (fail closed).

use std::{fmt, path::PathBuf, time::Duration};

use futures::{StreamExt, future::BoxFuture};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpStream, UnixStream},
};

use crate::ByteStream;

/// Reads a whole file and says whether it may be kept.
pub trait Scanner: Send + Sync + fmt::Debug + 'static {
    fn scan(&self, body: ByteStream) -> BoxFuture<'_, Result<(), ScanError>>;
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The scanner found malware; the upload is refused (422).
    #[error("the file was refused by the malware scanner ({signature})")]
    Infected { signature: String },
    /// The scanner could not be asked or gave no verdict; the upload is refused (503), never
    /// kept unscanned.
    #[error("the malware scanner is unavailable: {0}")]
    Unavailable(String),
}

/// clamd, at a Unix socket path or `tcp://host:port`.
#[derive(Clone, Debug)]
pub struct ClamAv {
    address: ClamdAddress,
}

#[derive(Clone, Debug)]
enum ClamdAddress {
    Unix(PathBuf),
    Tcp(String),
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// clamd answers once it has read everything; scanning a large archive takes a while.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(300);
const CHUNK_BYTES: usize = 64 * 1024;

impl ClamAv {
    pub fn new(socket: &str) -> Self {
        let address = match socket.strip_prefix("tcp://") {
            Some(host_port) => ClamdAddress::Tcp(host_port.to_owned()),
            None => ClamdAddress::Unix(PathBuf::from(socket)),
        };
        Self { address }
    }

    async fn scan_stream(&self, body: ByteStream) -> Result<(), ScanError> {
        let unavailable = |e: std::io::Error| ScanError::Unavailable(format!("clamd: {e}"));
        match &self.address {
            ClamdAddress::Unix(path) => {
                let conn = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path))
                    .await
                    .map_err(|_| ScanError::Unavailable("clamd: connect timed out".to_owned()))?
                    .map_err(unavailable)?;
                instream(conn, body).await
            }
            ClamdAddress::Tcp(address) => {
                let conn = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
                    .await
                    .map_err(|_| ScanError::Unavailable("clamd: connect timed out".to_owned()))?
                    .map_err(unavailable)?;
                instream(conn, body).await
            }
        }
    }
}

impl Scanner for ClamAv {
    fn scan(&self, body: ByteStream) -> BoxFuture<'_, Result<(), ScanError>> {
        Box::pin(self.scan_stream(body))
    }
}

/// `zINSTREAM\0`, then chunks each prefixed by their length (4 bytes, big-endian), then a
/// zero length; clamd answers `stream: OK`, `stream: <signature> FOUND` or `<message> ERROR`.
async fn instream<C>(mut conn: C, mut body: ByteStream) -> Result<(), ScanError>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let unavailable = |e: std::io::Error| ScanError::Unavailable(format!("clamd: {e}"));
    conn.write_all(b"zINSTREAM\0").await.map_err(unavailable)?;
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| ScanError::Unavailable(format!("reading the stored file: {e}")))?;
        for piece in chunk.chunks(CHUNK_BYTES) {
            let len = u32::try_from(piece.len()).unwrap_or(u32::MAX).to_be_bytes();
            let sent = async {
                conn.write_all(&len).await?;
                conn.write_all(piece).await
            };
            if sent.await.is_err() {
                // clamd stops reading and answers when the stream passes its size limit.
                return verdict(&mut conn).await;
            }
        }
    }
    conn.write_all(&[0, 0, 0, 0]).await.map_err(unavailable)?;
    verdict(&mut conn).await
}

async fn verdict<C: AsyncRead + Unpin>(conn: &mut C) -> Result<(), ScanError> {
    let mut reply = Vec::new();
    let mut limited = conn.take(4096);
    tokio::time::timeout(VERDICT_TIMEOUT, limited.read_to_end(&mut reply))
        .await
        .map_err(|_| ScanError::Unavailable("clamd gave no verdict in time".to_owned()))?
        .map_err(|e| ScanError::Unavailable(format!("clamd: {e}")))?;
    interpret(&String::from_utf8_lossy(&reply))
}

fn interpret(reply: &str) -> Result<(), ScanError> {
    let reply = reply.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let answer = reply.strip_prefix("stream:").map(str::trim);
    match answer {
        Some("OK") => Ok(()),
        Some(found) if found.ends_with(" FOUND") => Err(ScanError::Infected {
            signature: found.trim_end_matches(" FOUND").trim().to_owned(),
        }),
        _ => Err(ScanError::Unavailable(format!("clamd answered {reply:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::net::UnixListener;

    use super::*;

    /// A clamd that speaks INSTREAM and finds anything containing `EICAR`.
    async fn fake_clamd(path: PathBuf) -> tokio::task::JoinHandle<Vec<usize>> {
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut command = [0u8; 10];
            conn.read_exact(&mut command).await.unwrap();
            assert_eq!(&command, b"zINSTREAM\0");
            let (mut data, mut chunks) = (Vec::new(), Vec::new());
            loop {
                let mut len = [0u8; 4];
                conn.read_exact(&mut len).await.unwrap();
                let len = u32::from_be_bytes(len) as usize;
                if len == 0 {
                    break;
                }
                chunks.push(len);
                let mut chunk = vec![0u8; len];
                conn.read_exact(&mut chunk).await.unwrap();
                data.extend(chunk);
            }
            let infected = data.windows(5).any(|w| w == b"EICAR");
            let reply: &[u8] = if infected {
                b"stream: Eicar-Test-Signature FOUND\0"
            } else {
                b"stream: OK\0"
            };
            conn.write_all(reply).await.unwrap();
            chunks
        })
    }

    fn body(parts: Vec<Vec<u8>>) -> ByteStream {
        futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
    }

    #[tokio::test]
    async fn clean_files_pass_and_large_chunks_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.sock");
        let clamd = fake_clamd(path.clone()).await;
        let scanner = ClamAv::new(path.to_str().unwrap());
        scanner
            .scan(body(vec![vec![b'a'; 100_000], b"tail".to_vec()]))
            .await
            .unwrap();
        assert_eq!(clamd.await.unwrap(), [65_536, 34_464, 4]);
    }

    #[tokio::test]
    async fn infected_files_are_refused_with_the_signature() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.sock");
        let _clamd = fake_clamd(path.clone()).await;
        let verdict = ClamAv::new(path.to_str().unwrap())
            .scan(body(vec![
                b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD".to_vec(),
            ]))
            .await;
        match verdict {
            Err(ScanError::Infected { signature }) => assert_eq!(signature, "Eicar-Test-Signature"),
            other => panic!("expected infected, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_missing_clamd_is_unavailable_not_clean() {
        let dir = tempfile::tempdir().unwrap();
        let verdict = ClamAv::new(dir.path().join("none.sock").to_str().unwrap())
            .scan(body(vec![b"x".to_vec()]))
            .await;
        assert!(
            matches!(verdict, Err(ScanError::Unavailable(_))),
            "{verdict:?}"
        );
    }

    #[test]
    fn replies_are_read_strictly() {
        assert!(interpret("stream: OK\0").is_ok());
        assert!(matches!(
            interpret("stream: Win.Test.EICAR_HDB-1 FOUND\0"),
            Err(ScanError::Infected { signature }) if signature == "Win.Test.EICAR_HDB-1"
        ));
        for reply in [
            "INSTREAM size limit exceeded. ERROR\0",
            "",
            "OK",
            "stream: maybe",
        ] {
            assert!(
                matches!(interpret(reply), Err(ScanError::Unavailable(_))),
                "{reply:?}"
            );
        }
    }
}
