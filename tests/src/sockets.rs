//! A TCP relay that looks at each client's socket from outside: when a client sends its first
//! bytes, the relay finds which process owns the other end (through `/proc`), borrows that
//! socket with `pidfd_getfd` and reads its `TCP_NODELAY` option. Used to show that every
//! socket the DB rotator opens has Nagle's algorithm off, without trusting the rotator's word.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One client connection as the relay saw it before forwarding its first bytes.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The executable of the process that owns the client socket.
    pub exe: String,
    pub nodelay: bool,
}

pub struct Relay {
    pub port: u16,
    seen: Arc<Mutex<Vec<Result<Seen, String>>>>,
    /// The first bytes each client sent (e.g. PostgreSQL's SSLRequest, or a plain start-up).
    first: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Relay {
    /// Listens on 127.0.0.1 and forwards every connection to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Result<Seen, String>>>> = Arc::default();
        let record = seen.clone();
        let first_bytes: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let record_first = first_bytes.clone();
        tokio::spawn(async move {
            while let Ok((client, peer)) = listener.accept().await {
                let record = record.clone();
                let record_first = record_first.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    // The server may speak first (MySQL's greeting).
                    tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
                    let mut first = vec![0u8; 16 * 1024];
                    let n = match cr.read(&mut first).await {
                        Ok(n) if n > 0 => n,
                        _ => return,
                    };
                    record_first.lock().unwrap().push(first[..n].to_vec());
                    let look = tokio::task::spawn_blocking(move || inspect(peer.port(), port))
                        .await
                        .unwrap();
                    record.lock().unwrap().push(look);
                    if sw.write_all(&first[..n]).await.is_ok() {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    }
                });
            }
        });
        Relay {
            port,
            seen,
            first: first_bytes,
        }
    }

    /// The first bytes of every client seen so far.
    pub fn first_bytes(&self) -> Vec<Vec<u8>> {
        self.first.lock().unwrap().clone()
    }

    /// Every client seen so far.
    pub fn seen(&self) -> Vec<Result<Seen, String>> {
        self.seen.lock().unwrap().clone()
    }
}

/// The inode of the IPv4 TCP socket from 127.0.0.1:`local` to port `remote`.
fn socket_inode(local: u16, remote: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
        (port(f.get(1)?)? == local && port(f.get(2)?)? == remote)
            .then(|| f.get(9).map(|s| s.to_string()))?
    })
}

/// The process and descriptor holding socket `inode`.
fn owner(inode: &str) -> Option<(i32, i32)> {
    let wanted = format!("socket:[{inode}]");
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == wanted)
                && let Ok(n) = fd.file_name().to_string_lossy().parse::<i32>()
            {
                return Some((pid, n));
            }
        }
    }
    None
}

/// `TCP_NODELAY` of descriptor `fd` in process `pid`, read through a duplicate of it.
fn nodelay_of(pid: i32, fd: i32) -> Result<bool, String> {
    let os = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: plain syscalls on descriptors this function owns and closes.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if pidfd < 0 {
            return Err(os("pidfd_open"));
        }
        let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
        libc::close(pidfd);
        if dup < 0 {
            return Err(os("pidfd_getfd"));
        }
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let rc = libc::getsockopt(
            dup,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        );
        libc::close(dup);
        if rc != 0 {
            return Err(os("getsockopt"));
        }
        Ok(value != 0)
    }
}

fn inspect(client_port: u16, relay_port: u16) -> Result<Seen, String> {
    let inode = socket_inode(client_port, relay_port)
        .ok_or_else(|| format!("no socket from port {client_port} in /proc/net/tcp"))?;
    let (pid, fd) = owner(&inode).ok_or_else(|| format!("no process holds socket {inode}"))?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Seen {
        exe,
        nodelay: nodelay_of(pid, fd)?,
    })
}
