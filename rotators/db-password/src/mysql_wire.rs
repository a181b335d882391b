//! The part of the MySQL/MariaDB client protocol the rotator needs: log in (optionally over TLS,
//! with `mysql_native_password` or `caching_sha2_password`) and run text-protocol statements.
//!
//! Why not `mysql_async` (0.37.1, checked for #19): it opens its own sockets with `TCP_NODELAY`
//! and caches its TLS connector per `Opts`, which would do; but on answers a hostile server may
//! send it panics: `caching_sha2_password` full authentication without TLS XORs the password with
//! `nonce[i % nonce.len()]` (an empty nonce divides by zero, src/conn/mod.rs), and mysql_common's
//! `crypto::encrypt` panics on a malformed server public key or one too short for the password
//! (`PublicKey::from_pem`, `encrypt_block`). In single-user mode the secret's writer picks the
//! server, so every answer here is bounded and checked instead.
//!
//! Bounds: a packet over `MAX_PACKET` bytes, a result over `MAX_ROWS` rows or `MAX_RESULT` bytes
//! ends the session with an error. Multi-statements are never enabled, so one query string runs
//! as one statement.

use aws_lc_rs::digest;
use rustls::ClientConfig;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_LONG_FLAG: u32 = 0x4;
const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x20_0000;
/// utf8mb4_general_ci, known to MySQL 5.5+ and every MariaDB: names and passwords travel as UTF-8.
const UTF8MB4: u8 = 45;
/// The largest packet read (and announced to the server): the function's answers are a few rows
/// of names and grants, and it runs in 128 MB.
pub const MAX_PACKET: usize = 1 << 20;
/// The most columns, rows and bytes one result may hold (the function's queries have at most 4
/// columns; each value costs memory beyond its bytes on the wire).
pub const MAX_COLUMNS: u64 = 64;
pub const MAX_ROWS: usize = 10_000;
pub const MAX_RESULT: usize = 4 << 20;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A logged-in session.
pub struct Conn {
    io: Box<dyn Io>,
    seq: u8,
}

/// A statement that failed. `server`: the server answered with an error packet, so the session
/// is still in step; otherwise the connection broke or the answer made no sense.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub server: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self {
            message,
            server: false,
        }
    }
}

pub struct Login<'a> {
    pub host: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub database: Option<&'a str>,
    /// `Some` = TLS required and verified with this config; `None` = plain text.
    pub tls: Option<Arc<ClientConfig>>,
}

/// A row of a text result set: each column as text, `None` for SQL NULL.
pub type Row = Vec<Option<String>>;

fn bad(what: impl Into<String>) -> String {
    format!("unexpected answer from the server: {}", what.into())
}

/// Reads what a packet holds, in order.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(bad("packet too short"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn nul_terminated(&mut self) -> Result<&'a [u8], String> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("string without terminator"))?;
        let s = self.take(end)?;
        self.take(1)?;
        Ok(s)
    }
    /// A length-encoded integer; `None` for the NULL marker 0xFB.
    fn lenenc(&mut self) -> Result<Option<u64>, String> {
        Ok(Some(match self.u8()? {
            0xFB => return Ok(None),
            0xFC => u64::from(self.u16()?),
            0xFD => {
                let b = self.take(3)?;
                u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16
            }
            0xFE => {
                let b = self.take(8)?;
                u64::from_le_bytes(b.try_into().expect("8 bytes"))
            }
            n => u64::from(n),
        }))
    }
    fn lenenc_text(&mut self) -> Result<Option<String>, String> {
        let Some(n) = self.lenenc()? else {
            return Ok(None);
        };
        let n = usize::try_from(n).map_err(|_| bad("oversized value"))?;
        Ok(Some(String::from_utf8_lossy(self.take(n)?).into_owned()))
    }
}

/// The server's ERR packet as text: `ERROR 1045 (28000): Access denied for user ...`.
fn server_error(payload: &[u8]) -> String {
    let mut r = Reader(payload.get(1..).unwrap_or_default());
    let code = r.u16().unwrap_or(0);
    let rest = r.0;
    let (state, message) = match rest.strip_prefix(b"#") {
        Some(s) if s.len() >= 5 => (String::from_utf8_lossy(&s[..5]).into_owned(), &s[5..]),
        _ => (String::new(), rest),
    };
    format!(
        "ERROR {code} ({state}): {}",
        String::from_utf8_lossy(message)
    )
}

fn sha(alg: &'static digest::Algorithm, parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = digest::Context::new(alg);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().to_vec()
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// `mysql_native_password`: SHA1(pw) XOR SHA1(nonce, SHA1(SHA1(pw))).
pub fn native_scramble(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let alg = &digest::SHA1_FOR_LEGACY_USE_ONLY;
    let h1 = sha(alg, &[password]);
    let h2 = sha(alg, &[&h1]);
    xor(&h1, &sha(alg, &[nonce, &h2]))
}

/// The `mysql_native_password` hash an account stores: `*` and SHA1(SHA1(pw)) in upper-case hex,
/// as `PASSWORD()` computes it.
pub fn native_password_hash(password: &[u8]) -> String {
    let alg = &digest::SHA1_FOR_LEGACY_USE_ONLY;
    let twice = sha(alg, &[&sha(alg, &[password])]);
    let hex: String = twice.iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

/// `caching_sha2_password` fast path: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)), nonce).
pub fn sha2_scramble(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let alg = &digest::SHA256;
    let h1 = sha(alg, &[password]);
    let h2 = sha(alg, &[&h1]);
    xor(&h1, &sha(alg, &[&h2, nonce]))
}

/// `caching_sha2_password` full authentication without TLS: the NUL-terminated password XOR the
/// nonce, encrypted with RSA-OAEP (SHA-1) under the server's public key (PEM).
pub fn rsa_encrypt_password(
    password: &[u8],
    nonce: &[u8],
    public_key_pem: &[u8],
) -> Result<Vec<u8>, String> {
    use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OaepPublicEncryptingKey, PublicEncryptingKey};
    use rustls::pki_types::SubjectPublicKeyInfoDer;
    use rustls::pki_types::pem::PemObject;
    let der = SubjectPublicKeyInfoDer::from_pem_slice(public_key_pem)
        .map_err(|e| bad(format!("server public key: {e}")))?;
    let key = PublicEncryptingKey::from_der(der.as_ref())
        .ok()
        .and_then(|k| OaepPublicEncryptingKey::new(k).ok())
        .ok_or_else(|| bad("server public key is not an RSA key"))?;
    if nonce.is_empty() {
        return Err(bad("an empty nonce for caching_sha2_password"));
    }
    let mut plain = Zeroizing::new(password.to_vec());
    plain.push(0);
    for (i, b) in plain.iter_mut().enumerate() {
        *b ^= nonce[i % nonce.len()];
    }
    let mut out = vec![0; key.ciphertext_size()];
    let n = key
        .encrypt(&OAEP_SHA1_MGF1SHA1, &plain, &mut out, None)
        .map_err(|_| "the password is too long for the server's RSA key".to_string())?
        .len();
    out.truncate(n);
    Ok(out)
}

/// Reads one packet (joining the continuations of a 16 MiB one) and notes its sequence number.
/// A packet longer than `MAX_PACKET` is refused before it is read.
async fn read_packet(io: &mut (dyn Io + '_), seq: &mut u8) -> Result<Vec<u8>, String> {
    let failed = |e: std::io::Error| format!("reading from the server: {e}");
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; 4];
        io.read_exact(&mut header).await.map_err(failed)?;
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        *seq = header[3].wrapping_add(1);
        let start = payload.len();
        if start + len > MAX_PACKET {
            return Err(bad(format!(
                "a packet of more than {} KiB, the most this function reads",
                MAX_PACKET >> 10
            )));
        }
        payload.resize(start + len, 0);
        io.read_exact(&mut payload[start..]).await.map_err(failed)?;
        if len < 0xFF_FFFF {
            return Ok(payload);
        }
    }
}

/// Writes one packet (split every 2^24-1 bytes, as the protocol wants) in one flush.
async fn write_packet(io: &mut (dyn Io + '_), seq: &mut u8, payload: &[u8]) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("writing to the server: {e}");
    // Zeroized: a packet may carry a password (ALTER USER, full authentication).
    let mut out = Zeroizing::new(Vec::with_capacity(payload.len() + 8));
    let mut rest = payload;
    loop {
        let n = rest.len().min(0xFF_FFFF);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.push(*seq);
        *seq = seq.wrapping_add(1);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        // A full-size packet is followed by another, empty if nothing is left.
        if n < 0xFF_FFFF {
            break;
        }
    }
    io.write_all(&out).await.map_err(failed)?;
    io.flush().await.map_err(failed)
}

impl Conn {
    async fn read_packet(&mut self) -> Result<Vec<u8>, String> {
        read_packet(&mut *self.io, &mut self.seq).await
    }

    async fn write_packet(&mut self, payload: &[u8]) -> Result<(), String> {
        write_packet(&mut *self.io, &mut self.seq, payload).await
    }

    /// Logs in over `tcp` (already connected, `TCP_NODELAY` set by the caller). The server's
    /// version in its greeting is not trusted (it precedes TLS): ask `VERSION()` afterwards.
    pub async fn login<S>(mut tcp: S, l: Login<'_>) -> Result<Conn, String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut seq = 0;
        let greeting = read_packet(&mut tcp, &mut seq).await?;
        if greeting.first() == Some(&0xFF) {
            return Err(server_error(&greeting));
        }
        let mut r = Reader(&greeting);
        if r.u8()? != 10 {
            return Err(bad("not a protocol 10 handshake"));
        }
        let server_version = String::from_utf8_lossy(r.nul_terminated()?).into_owned();
        let server_version: String = server_version.chars().take(64).collect();
        r.u32()?; // connection id
        let mut nonce = r.take(8)?.to_vec();
        r.u8()?;
        let mut server_caps = u32::from(r.u16()?);
        r.u8()?; // character set
        r.u16()?; // status
        server_caps |= u32::from(r.u16()?) << 16;
        let data_len = usize::from(r.u8()?);
        r.take(10)?;
        if server_caps & CLIENT_SECURE_CONNECTION != 0 {
            let n = data_len.saturating_sub(8).max(13);
            let rest = r.take(n)?;
            // The second part ends with a NUL that is not part of the 20-byte nonce.
            nonce.extend_from_slice(rest.strip_suffix(&[0]).unwrap_or(rest));
        }
        let plugin = if server_caps & CLIENT_PLUGIN_AUTH != 0 {
            String::from_utf8_lossy(r.nul_terminated().unwrap_or(b"")).into_owned()
        } else {
            "mysql_native_password".to_string()
        };
        let needed = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH;
        if server_caps & needed != needed {
            return Err(format!(
                "server {server_version} is too old (no protocol 4.1 authentication)"
            ));
        }
        let mut caps = CLIENT_LONG_PASSWORD
            | CLIENT_LONG_FLAG
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        if l.database.is_some() {
            caps |= CLIENT_CONNECT_WITH_DB;
        }
        let tls = l.tls.is_some();
        if tls {
            caps |= CLIENT_SSL;
        }
        caps &= server_caps | CLIENT_SSL;
        let mut head = Vec::with_capacity(32);
        head.extend_from_slice(&caps.to_le_bytes());
        head.extend_from_slice(&(MAX_PACKET as u32).to_le_bytes());
        head.push(UTF8MB4);
        head.extend_from_slice(&[0; 23]);
        let io: Box<dyn Io> = match l.tls.clone() {
            None => Box::new(tcp),
            Some(_) if server_caps & CLIENT_SSL == 0 => {
                return Err("the server does not offer TLS".into());
            }
            Some(config) => {
                // SSLRequest: the first 32 bytes of the handshake response, then TLS.
                write_packet(&mut tcp, &mut seq, &head).await?;
                Box::new(
                    crate::net::start_tls(config, l.host, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake: {e}"))?,
                )
            }
        };
        let mut conn = Conn { io, seq };
        let mut response = head;
        response.extend_from_slice(l.user.as_bytes());
        response.push(0);
        let auth = auth_response(&plugin, l.password.as_bytes(), &nonce)?;
        push_lenenc(&mut response, auth.len());
        response.extend_from_slice(&auth);
        if let Some(db) = l.database.filter(|_| caps & CLIENT_CONNECT_WITH_DB != 0) {
            response.extend_from_slice(db.as_bytes());
            response.push(0);
        }
        response.extend_from_slice(plugin.as_bytes());
        response.push(0);
        conn.write_packet(&response).await?;
        conn.finish_auth(plugin, nonce, l.password.as_bytes(), tls)
            .await?;
        Ok(conn)
    }

    /// Answers auth switches and `caching_sha2_password`'s extra rounds until OK or ERR.
    async fn finish_auth(
        &mut self,
        mut plugin: String,
        mut nonce: Vec<u8>,
        password: &[u8],
        tls: bool,
    ) -> Result<(), String> {
        loop {
            let packet = self.read_packet().await?;
            match packet.first() {
                Some(0x00) => return Ok(()),
                Some(0xFF) => return Err(server_error(&packet)),
                Some(0xFE) => {
                    let mut r = Reader(&packet[1..]);
                    plugin = String::from_utf8_lossy(r.nul_terminated()?).into_owned();
                    let data = r.0;
                    nonce = data.strip_suffix(&[0]).unwrap_or(data).to_vec();
                    let auth = auth_response(&plugin, password, &nonce)?;
                    self.write_packet(&auth).await?;
                }
                Some(0x01) if plugin == "caching_sha2_password" => match packet.get(1) {
                    // Fast authentication succeeded; OK follows.
                    Some(3) => {}
                    // Full authentication: the password itself, only ever inside TLS.
                    Some(4) if tls => {
                        let mut pw = Zeroizing::new(password.to_vec());
                        pw.push(0);
                        self.write_packet(&pw).await?;
                    }
                    Some(4) => {
                        self.write_packet(&[2]).await?;
                        let key = self.read_packet().await?;
                        if key.first() != Some(&0x01) {
                            return Err(bad("no public key for caching_sha2_password"));
                        }
                        let sealed = rsa_encrypt_password(password, &nonce, &key[1..])?;
                        self.write_packet(&sealed).await?;
                    }
                    _ => return Err(bad("caching_sha2_password step")),
                },
                _ => return Err(bad(format!("authentication step of {plugin}"))),
            }
        }
    }

    /// Runs one statement; returns its rows (empty for statements without a result set).
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Row>, Failure> {
        self.seq = 0;
        let mut command = Zeroizing::new(Vec::with_capacity(sql.len() + 1));
        command.push(0x03); // COM_QUERY
        command.extend_from_slice(sql.as_bytes());
        self.write_packet(&command).await?;
        let first = self.read_packet().await?;
        match first.first() {
            Some(0x00) => return Ok(Vec::new()),
            Some(0xFF) => {
                return Err(Failure {
                    message: server_error(&first),
                    server: true,
                });
            }
            Some(0xFB) => return Err(bad("LOCAL INFILE request").into()),
            _ => {}
        }
        let columns = Reader(&first)
            .lenenc()?
            .ok_or_else(|| bad("column count"))?;
        if columns > MAX_COLUMNS {
            return Err(bad(format!("a result of {columns} columns")).into());
        }
        for _ in 0..columns {
            self.read_packet().await?;
        }
        let eof = self.read_packet().await?;
        if !is_eof(&eof) {
            return Err(bad("no EOF after the column definitions").into());
        }
        let (mut rows, mut bytes) = (Vec::new(), 0);
        loop {
            let packet = self.read_packet().await?;
            if is_eof(&packet) {
                return Ok(rows);
            }
            if packet.first() == Some(&0xFF) {
                return Err(Failure {
                    message: server_error(&packet),
                    server: true,
                });
            }
            bytes += packet.len();
            if rows.len() == MAX_ROWS || bytes > MAX_RESULT {
                return Err(bad(format!(
                    "a result of more than {MAX_ROWS} rows or {} MiB",
                    MAX_RESULT >> 20
                ))
                .into());
            }
            let mut r = Reader(&packet);
            let row = (0..columns)
                .map(|_| r.lenenc_text())
                .collect::<Result<Row, String>>()?;
            rows.push(row);
        }
    }
}

fn is_eof(packet: &[u8]) -> bool {
    packet.first() == Some(&0xFE) && packet.len() < 9
}

fn push_lenenc(out: &mut Vec<u8>, n: usize) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        _ => {
            out.push(0xFD);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
    }
}

fn auth_response(plugin: &str, password: &[u8], nonce: &[u8]) -> Result<Vec<u8>, String> {
    let nonce = &nonce[..nonce.len().min(20)];
    if nonce.is_empty() {
        return Err(bad(format!("an empty nonce for {plugin}")));
    }
    match plugin {
        "mysql_native_password" => Ok(native_scramble(password, nonce)),
        "caching_sha2_password" => Ok(sha2_scramble(password, nonce)),
        other => Err(format!(
            "the account uses the authentication plugin {other}, which this rotator does not speak (mysql_native_password and caching_sha2_password are supported)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values: MySQL's PASSWORD('secret') is '*14E65567ABDB5135D0CFD9A70B3032C179A49EE7',
    /// i.e. SHA1(SHA1("secret")); the scramble XORed back with SHA1(nonce, that) gives SHA1(pw).
    #[test]
    fn native_scramble_unwinds_to_the_password_hash() {
        let nonce = b"01234567890123456789";
        let s = native_scramble(b"secret", nonce);
        let alg = &digest::SHA1_FOR_LEGACY_USE_ONLY;
        let h1 = sha(alg, &[b"secret"]);
        let h2 = sha(alg, &[&h1]);
        let hex: String = h2.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, "14E65567ABDB5135D0CFD9A70B3032C179A49EE7");
        assert_eq!(
            native_password_hash(b"secret"),
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
        );
        assert_eq!(xor(&s, &sha(alg, &[nonce, &h2])), h1);
        assert!(native_scramble(b"", nonce).is_empty());
    }

    fn public_key_pem() -> String {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let der = private.public_key().as_der().unwrap();
        let b64 = base64_encode(der.as_ref());
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    #[test]
    fn rsa_sealed_password_opens_with_the_private_key() {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{
            KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey,
        };
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let public_der = private.public_key().as_der().unwrap();
        let b64 = base64_encode(public_der.as_ref());
        let pem_text = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
        let nonce = b"abcdefghijabcdefghij";
        let sealed = rsa_encrypt_password(b"p@ss", nonce, pem_text.as_bytes()).unwrap();
        let key = OaepPrivateDecryptingKey::new(private).unwrap();
        let mut out = vec![0; key.min_output_size()];
        let opened = key
            .decrypt(&OAEP_SHA1_MGF1SHA1, &sealed, &mut out, None)
            .unwrap();
        let clear: Vec<u8> = opened
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ nonce[i % 20])
            .collect();
        assert_eq!(clear, b"p@ss\0");
    }

    /// A server greeting offering `mysql_native_password` with a 20-byte nonce, and TLS.
    fn greeting() -> Vec<u8> {
        let caps = CLIENT_LONG_PASSWORD
            | CLIENT_PROTOCOL_41
            | CLIENT_SSL
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH;
        let mut g = vec![10];
        g.extend_from_slice(b"5.5.5-10.11.0-MariaDB\0");
        g.extend_from_slice(&7u32.to_le_bytes());
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&(caps as u16).to_le_bytes());
        g.push(UTF8MB4);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(b"ijklmnopqrst\0");
        g.extend_from_slice(b"mysql_native_password\0");
        g
    }

    /// Frames payloads as the server would, sequence numbers from 0.
    fn framed(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (seq, p) in packets.iter().enumerate() {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes()[..3]);
            out.push(seq as u8);
            out.extend_from_slice(p);
        }
        out
    }

    /// Plays `bytes` as the server (then hangs up) against a login, and a query when the login
    /// succeeds, on a fresh runtime. Returns the login's and the query's outcome.
    fn against(
        bytes: Vec<u8>,
        query_answer: Vec<u8>,
        tls: bool,
    ) -> (Result<(), String>, Option<bool>) {
        static CONFIG: std::sync::OnceLock<Arc<ClientConfig>> = std::sync::OnceLock::new();
        let config = CONFIG
            .get_or_init(|| crate::net::client_config(crate::db::RDS_CA_BUNDLE).unwrap())
            .clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, mut server) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                let _ = server.write_all(&bytes).await;
                let mut sink = vec![0u8; 4096];
                // Read the client's packets, then answer the query.
                let _ = tokio::time::timeout(std::time::Duration::from_millis(5), async {
                    while server.read(&mut sink).await.unwrap_or(0) > 0 {}
                })
                .await;
                let _ = server.write_all(&query_answer).await;
            });
            let login = Conn::login(
                client,
                Login {
                    host: "db.example",
                    user: "app",
                    password: "pw",
                    database: Some("app"),
                    tls: tls.then_some(config),
                },
            )
            .await;
            match login {
                Err(e) => (Err(e), None),
                Ok(mut conn) => {
                    let q = tokio::time::timeout(
                        std::time::Duration::from_secs(1),
                        conn.query("SELECT 1"),
                    )
                    .await;
                    (Ok(()), Some(matches!(q, Ok(Ok(_)))))
                }
            }
        })
    }

    #[test]
    fn a_well_formed_exchange_logs_in_and_reads_rows() {
        let login = framed(&[greeting(), vec![0, 0, 0, 2, 0, 0, 0]]);
        // One column, its definition, EOF, one row "1", EOF.
        let answer = framed(&[
            vec![1],
            vec![3, b'd', b'e', b'f'],
            vec![0xFE, 0, 0, 2, 0],
            vec![1, b'1'],
            vec![0xFE, 0, 0, 2, 0],
        ]);
        assert_eq!(against(login, answer, false), (Ok(()), Some(true)));
    }

    /// The answers that broke the earlier client, each refused with an error naming it.
    #[test]
    fn hostile_answers_are_errors() {
        let error = |bytes| against(bytes, vec![], false).0.unwrap_err();
        // An auth switch to caching_sha2_password with an empty nonce, then full authentication
        // without TLS with a real key: the nonce XOR divided by zero.
        let mut switch = vec![0xFE];
        switch.extend_from_slice(b"caching_sha2_password\0");
        let mut key = vec![1];
        key.extend_from_slice(public_key_pem().as_bytes());
        let e = error(framed(&[greeting(), switch, vec![1, 4], key]));
        assert!(e.contains("empty nonce"), "{e}");
        // Full authentication without TLS, then junk for the server's public key.
        let mut switch = vec![0xFE];
        switch.extend_from_slice(b"caching_sha2_password\0abcdefghijklmnopqrst\0");
        let e = error(framed(&[
            greeting(),
            switch,
            vec![1, 4],
            vec![1, b'x', b'y'],
        ]));
        assert!(e.contains("server public key"), "{e}");
        // A 16 MiB packet: refused at its header, before anything is allocated for it.
        let mut huge = vec![0xFF, 0xFF, 0xFF, 0];
        huge.extend_from_slice(&[0; 1024]);
        let e = error(huge);
        assert!(e.contains("a packet of more than 1024 KiB"), "{e}");
        // Endless rows: the result is cut at MAX_ROWS.
        let login = framed(&[greeting(), vec![0, 0, 0, 2, 0, 0, 0]]);
        let mut rows = vec![vec![1], vec![3, b'd', b'e', b'f'], vec![0xFE, 0, 0, 2, 0]];
        rows.extend(std::iter::repeat_n(vec![1, b'1'], MAX_ROWS + 1));
        let mut answer = Vec::new();
        for (i, p) in rows.iter().enumerate() {
            answer.extend_from_slice(&(p.len() as u32).to_le_bytes()[..3]);
            answer.push(i as u8);
            answer.extend_from_slice(p);
        }
        assert_eq!(against(login, answer, false), (Ok(()), Some(false)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(CASES))]

        /// Any answers at all, framed as packets or not, with TLS or without: the client returns
        /// an error or a result, never panics.
        #[test]
        fn no_answer_makes_the_client_panic(
            packets in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..6),
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            answers in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..32), 0..8),
            mutate_greeting in proptest::bool::ANY,
            tls in proptest::bool::ANY,
        ) {
            let mut first = packets;
            if mutate_greeting {
                // A real greeting with bytes of it replaced, so the parser gets deep.
                let mut g = greeting();
                for (i, b) in raw.iter().enumerate() {
                    let at = (usize::from(*b) * 7 + i) % g.len();
                    g[at] = raw[(i + 1) % raw.len()];
                }
                first.insert(0, g);
            }
            let mut bytes = framed(&first);
            if !mutate_greeting {
                bytes.extend_from_slice(&raw);
            }
            let _ = against(bytes, framed(&answers), tls);
        }
    }

    /// The number of generated cases, reported in docs/figures.md's reliability table.
    const CASES: u32 = 3000;

    fn base64_encode(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in data.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}
