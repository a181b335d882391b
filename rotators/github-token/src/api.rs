//! The GitHub calls, through octocrab's transport (App JWT auth to mint installation tokens,
//! installation tokens for everything else). Every request goes through `Api::send`, which reads
//! the raw answer: list calls follow GitHub's paging (`per_page=100` and the `Link` header), rate
//! limits (403/429 with `Retry-After` or `x-ratelimit-reset`) are waited out within the
//! invocation's deadline, and failures carry GitHub's own message and `errors[].message`.

use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::models::AppId;
use serde_json::{Value, json};
use shared::{Error, SecretString};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct Api {
    /// `GITHUB_API_URL`, e.g. `https://github.example.com/api/v3` for GitHub Enterprise Server.
    pub base: String,
}

/// An installation token, and when it was minted where known. GitHub may answer 401 for a token
/// minted a moment ago (a new token takes seconds to reach every server; octokit retries such
/// answers too), so a 401 for a token younger than `YOUNG` is waited out, not taken as dead.
#[derive(Clone)]
pub struct Token {
    pub secret: SecretString,
    pub minted: Option<SystemTime>,
}

/// How long after minting a 401 may still mean "not propagated yet".
pub const YOUNG: Duration = Duration::from_secs(10);
/// The pause between tries of a young token.
const YOUNG_RETRY: Duration = Duration::from_millis(500);

/// Whether a 401 may still only mean "not propagated yet": never proof the token is dead.
fn is_young(young_until: Option<SystemTime>) -> bool {
    young_until.is_some_and(|t| SystemTime::now() < t)
}

impl Token {
    /// Until when a 401 for this token may only mean it is new.
    pub(crate) fn young_until(&self) -> Option<SystemTime> {
        self.minted.and_then(|m| m.checked_add(YOUNG))
    }
}

/// An installation token as GitHub returned it.
pub struct Minted {
    pub token: Token,
    pub expires_at: String,
    pub permissions: Value,
}

pub struct DeployKey {
    pub id: u64,
    pub title: String,
    pub key: String,
    pub read_only: bool,
    /// When GitHub last saw the key used (`last_used`), if ever.
    pub last_used: Option<String>,
}

/// One answer: status, headers and JSON body (`Null` when empty).
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

#[derive(Clone, Copy)]
enum Verb<'a> {
    Get,
    Post(&'a Value),
    Delete,
}

/// The longest single wait for a rate limit; a longer one fails the step at once.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// A list longer than this many pages is not followed further.
const MAX_PAGES: usize = 100;

/// Marks the end of an external call: a crash point in fault-injection test builds.
fn called<T>(what: &str, result: T) -> T {
    shared::fault::after_call(what);
    result
}

fn header<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// How long GitHub asks us to wait, when an answer is a rate limit: `Retry-After` (secondary
/// limits), else `x-ratelimit-remaining: 0` with `x-ratelimit-reset` (primary), else a minute for
/// a bare 429, as GitHub's documentation says. A 403 without these is a permission error.
fn rate_limit_wait(status: u16, headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(secs) = header(headers, "retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header(headers, "x-ratelimit-remaining") == Some("0") {
        let reset = header(headers, "x-ratelimit-reset")?.parse::<u64>().ok()?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    (status == 429).then_some(Duration::from_secs(60))
}

/// GitHub's message and the details of `errors[]` (a message, or the code and field).
fn detail(body: &Value) -> String {
    let mut text = body["message"].as_str().unwrap_or_default().to_owned();
    let details: Vec<String> = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| match (e.as_str(), e["message"].as_str()) {
                    (Some(s), _) | (None, Some(s)) => Some(s.to_owned()),
                    _ => {
                        let (code, field) = (e["code"].as_str()?, e["field"].as_str());
                        Some(match field {
                            Some(f) => format!("{f} {code}"),
                            None => code.to_owned(),
                        })
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if !details.is_empty() {
        text = format!("{text}: {}", details.join("; "));
    }
    text
}

/// An RFC 3339 time as GitHub writes it (`2026-11-23T10:00:00Z`, fractions allowed), to the
/// second. `None` for anything else: the text may be a writer's (`expires_at`), so a date chrono
/// or `SystemTime` cannot hold, or one before 1970, is no time at all rather than a panic.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(t.timestamp()).ok()?))
}

/// The most of an answer read: GitHub's pages of 100 items are a few hundred KiB at most.
const MAX_BODY: usize = 1 << 20;

/// An answer's body read through `Limited` as text: a broken or hostile server could otherwise
/// make the function hold gigabytes, so past `MAX_BODY` the call fails, named.
fn body_text(
    read: Result<impl AsRef<[u8]>, Box<dyn std::error::Error + Send + Sync>>,
    what: &str,
) -> Result<String, Error> {
    let bytes = read.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            Error::target(format!(
                "GitHub {what}: the answer is longer than {} MiB, so it is not read",
                MAX_BODY >> 20
            ))
        } else {
            Error::target(format!("GitHub {what}: reading the answer: {e}"))
        }
    })?;
    String::from_utf8(bytes.as_ref().to_vec())
        .map_err(|_| Error::target(format!("GitHub {what}: the answer is not UTF-8")))
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(headers: &http::HeaderMap) -> Option<String> {
    header(headers, "link")?.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

fn failure(what: &str, a: &Answer) -> Error {
    Error::target(format!(
        "GitHub {what}: HTTP {} {}",
        a.status,
        detail(&a.body)
    ))
}

impl Api {
    fn builder(
        &self,
    ) -> Result<
        octocrab::OctocrabBuilder<
            octocrab::NoSvc,
            octocrab::DefaultOctocrabBuilderConfig,
            octocrab::NoAuth,
            octocrab::NotLayerReady,
        >,
        Error,
    > {
        Octocrab::builder()
            .base_uri(self.base.as_str())
            .map_err(|e| {
                Error::target(format!(
                    "GITHUB_API_URL {} is not a valid URL: {e}",
                    self.base
                ))
            })
    }

    fn app(&self, app_id: u64, pem: &SecretString) -> Result<Octocrab, Error> {
        let key = octocrab::EncodingKey::from_rsa_pem(pem.expose().as_bytes()).map_err(|_| {
            Error::value(
                "private key secret",
                "it holds no RSA private key in PEM form",
            )
        })?;
        self.builder()?
            .app(AppId(app_id), key)
            .build()
            .map_err(|e| Error::target(format!("GitHub client: {e}")))
    }

    fn with_token(&self, token: &Token) -> Result<Octocrab, Error> {
        self.builder()?
            .personal_token(token.secret.expose().to_owned())
            .build()
            .map_err(|e| Error::target(format!("GitHub client: {e}")))
    }

    /// Requests name a path only: octocrab puts the base URL in front and sends credentials to
    /// the base URL's host only.
    fn url(&self, route: &str) -> String {
        route.to_owned()
    }

    /// The path and query of a `Link` URL, if it is on the API's own origin: a token is never sent
    /// anywhere else.
    fn same_origin(&self, link: &str) -> Option<String> {
        let base: http::Uri = self.base.parse().ok()?;
        let link: http::Uri = link.parse().ok()?;
        (link.scheme() == base.scheme() && link.authority() == base.authority())
            .then(|| link.path_and_query().map(|p| p.as_str().to_owned()))
            .flatten()
    }

    /// One request, waiting out rate limits until `until`, and a 401 until `young_until` (the
    /// token is new: see `Token`). `name` marks the call for fault injection; `what`
    /// ("GET /route") names it in errors.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        client: &Octocrab,
        verb: Verb<'_>,
        url: &str,
        name: &str,
        what: &str,
        until: Instant,
        young_until: Option<SystemTime>,
    ) -> Result<Answer, Error> {
        // Named for the step's budget error, rate-limit waits included.
        let _waiting = shared::retry::waiting_for(format!("GitHub {what}"));
        loop {
            let sent = match verb {
                Verb::Get => client._get(url).await,
                Verb::Post(body) => client._post(url, Some(body)).await,
                Verb::Delete => client._delete(url, None::<&()>).await,
            };
            let response =
                called(name, sent).map_err(|e| Error::target(format!("GitHub {what}: {e}")))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = http_body_util::Limited::new(response.into_body(), MAX_BODY);
            let text = body_text(body.collect().await.map(|b| b.to_bytes()), what)?;
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            let answer = Answer {
                status,
                headers,
                body,
            };
            if status == 401 && is_young(young_until) && Instant::now() + YOUNG_RETRY < until {
                tracing::info!(
                    call = what,
                    "GitHub answered 401 for a token minted seconds ago; trying again"
                );
                tokio::time::sleep(YOUNG_RETRY).await;
                continue;
            }
            let Some(wait) = rate_limit_wait(status, &answer.headers, SystemTime::now()) else {
                return Ok(answer);
            };
            if wait > MAX_WAIT || Instant::now() + wait >= until {
                return Err(Error::target(format!(
                    "GitHub {what}: rate limited (HTTP {status}, {} left, resets in {}s); {}",
                    header(&answer.headers, "x-ratelimit-remaining").unwrap_or("?"),
                    wait.as_secs(),
                    detail(&answer.body)
                )));
            }
            tracing::warn!(
                call = what,
                status,
                wait_ms = wait.as_millis() as u64,
                "GitHub rate limit; waiting before retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Every item of a list, page by page (`per_page=100`, then each `rel="next"` link, which
    /// must stay on the API's own origin so a token is never sent elsewhere). With
    /// `dead_on_401`, a 401 is `Error::Dead`: the token under test is expired or revoked.
    #[allow(clippy::too_many_arguments)]
    async fn get_all(
        &self,
        client: &Octocrab,
        young_until: Option<SystemTime>,
        route: &str,
        name: &str,
        until: Instant,
        items: fn(&Value) -> Option<&Vec<Value>>,
        dead_on_401: bool,
    ) -> Result<Vec<Value>, Error> {
        let what = format!("GET {route}");
        let mut url = self.url(&format!("{route}?per_page=100"));
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let a = self
                .send(client, Verb::Get, &url, name, &what, until, young_until)
                .await?;
            if a.status == 401 && dead_on_401 && !is_young(young_until) {
                // The token itself is refused: expired, revoked or unknown.
                return Err(Error::dead(format!(
                    "GitHub {what}: HTTP 401 {}: the token is expired or revoked",
                    detail(&a.body)
                )));
            }
            if a.status != 200 {
                return Err(failure(&what, &a));
            }
            all.extend(items(&a.body).into_iter().flatten().cloned());
            let Some(next) = next_link(&a.headers) else {
                return Ok(all);
            };
            url = self.same_origin(&next).ok_or_else(|| {
                Error::target(format!(
                    "GitHub {what}: the next page {next} is not on {}",
                    self.base
                ))
            })?;
        }
        Err(Error::target(format!(
            "GitHub {what}: more than {MAX_PAGES} pages"
        )))
    }

    /// `POST /app/installations/{id}/access_tokens`, scoped by `scope` (repositories, permissions).
    pub async fn mint(
        &self,
        app_id: u64,
        pem: &SecretString,
        installation_id: u64,
        scope: &Value,
        until: Instant,
    ) -> Result<Minted, Error> {
        let app = self.app(app_id, pem)?;
        let asked = SystemTime::now();
        let route = format!("/app/installations/{installation_id}/access_tokens");
        let what = format!("POST {route}");
        let a = self
            .send(
                &app,
                Verb::Post(scope),
                &self.url(&route),
                "CreateInstallationToken",
                &what,
                until,
                None,
            )
            .await?;
        if a.status != 201 {
            return Err(failure(&what, &a));
        }
        let token = a.body["token"]
            .as_str()
            .ok_or_else(|| Error::target("GitHub returned no token"))?;
        Ok(Minted {
            token: Token {
                secret: SecretString::from(token),
                minted: Some(asked),
            },
            expires_at: a.body["expires_at"].as_str().unwrap_or_default().to_owned(),
            permissions: a.body["permissions"].clone(),
        })
    }

    /// `GET /app/installations/{id}` with the App's JWT: the installation (permissions,
    /// repository selection, suspension). Read-only.
    pub async fn installation(
        &self,
        app_id: u64,
        pem: &SecretString,
        installation_id: u64,
        until: Instant,
    ) -> Result<Value, Error> {
        let app = self.app(app_id, pem)?;
        let route = format!("/app/installations/{installation_id}");
        let what = format!("GET {route}");
        let a = self
            .send(
                &app,
                Verb::Get,
                &self.url(&route),
                "GetInstallation",
                &what,
                until,
                None,
            )
            .await?;
        match a.status {
            200 => Ok(a.body),
            _ => Err(failure(&what, &a)),
        }
    }

    /// Whether a token authenticates: one `GET /installation/repositories?per_page=1`. A 401 is
    /// `Error::Dead` (expired or revoked).
    pub async fn token_works(&self, token: &Token, until: Instant) -> Result<(), Error> {
        let client = self.with_token(token)?;
        let what = "GET /installation/repositories";
        let a = self
            .send(
                &client,
                Verb::Get,
                &self.url("/installation/repositories?per_page=1"),
                "ListInstallationRepositories",
                what,
                until,
                token.young_until(),
            )
            .await?;
        match a.status {
            200 => Ok(()),
            401 if !is_young(token.young_until()) => Err(Error::dead(format!(
                "GitHub {what}: HTTP 401 {}: the token is expired or revoked",
                detail(&a.body)
            ))),
            _ => Err(failure(what, &a)),
        }
    }

    /// `DELETE /installation/token`; a token that is already dead (401) counts as revoked.
    pub async fn revoke(&self, token: &Token, until: Instant) -> Result<(), Error> {
        let client = self.with_token(token)?;
        let what = "DELETE /installation/token";
        let a = self
            .send(
                &client,
                Verb::Delete,
                &self.url("/installation/token"),
                "RevokeInstallationToken",
                what,
                until,
                token.young_until(),
            )
            .await?;
        match a.status {
            204 | 401 => Ok(()),
            _ => Err(failure(what, &a)),
        }
    }

    /// `GET /installation/repositories`, every page, with the token under test: the full names it
    /// reaches. A 401 means the token is expired or revoked: `Error::Dead`.
    pub async fn repositories(&self, token: &Token, until: Instant) -> Result<Vec<String>, Error> {
        let client = self.with_token(token)?;
        let repos = self
            .get_all(
                &client,
                token.young_until(),
                "/installation/repositories",
                "ListInstallationRepositories",
                until,
                |b| b["repositories"].as_array(),
                true,
            )
            .await?;
        Ok(repos
            .iter()
            .filter_map(|r| r["full_name"].as_str().map(str::to_owned))
            .collect())
    }

    /// `GET /repos/{owner}/{repo}/keys`, every page.
    pub async fn keys(
        &self,
        token: &Token,
        owner: &str,
        repo: &str,
        until: Instant,
    ) -> Result<Vec<DeployKey>, Error> {
        let client = self.with_token(token)?;
        let route = format!("/repos/{owner}/{repo}/keys");
        let keys = self
            .get_all(
                &client,
                token.young_until(),
                &route,
                "ListDeployKeys",
                until,
                Value::as_array,
                false,
            )
            .await?;
        Ok(keys
            .iter()
            .map(|k| DeployKey {
                id: k["id"].as_u64().unwrap_or_default(),
                title: k["title"].as_str().unwrap_or_default().to_owned(),
                key: k["key"].as_str().unwrap_or_default().to_owned(),
                read_only: k["read_only"].as_bool().unwrap_or(false),
                last_used: k["last_used"].as_str().map(str::to_owned),
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn add_key(
        &self,
        token: &Token,
        owner: &str,
        repo: &str,
        title: &str,
        key: &str,
        read_only: bool,
        until: Instant,
    ) -> Result<(), Error> {
        let client = self.with_token(token)?;
        let route = format!("/repos/{owner}/{repo}/keys");
        let what = format!("POST {route}");
        let body = json!({"title": title, "key": key, "read_only": read_only});
        let a = self
            .send(
                &client,
                Verb::Post(&body),
                &self.url(&route),
                "CreateDeployKey",
                &what,
                until,
                token.young_until(),
            )
            .await?;
        match a.status {
            201 => Ok(()),
            _ => Err(failure(&what, &a)),
        }
    }

    /// Deletes a deploy key; one already gone (404) counts as deleted.
    pub async fn delete_key(
        &self,
        token: &Token,
        owner: &str,
        repo: &str,
        id: u64,
        until: Instant,
    ) -> Result<(), Error> {
        let client = self.with_token(token)?;
        let route = format!("/repos/{owner}/{repo}/keys/{id}");
        let what = format!("DELETE {route}");
        let a = self
            .send(
                &client,
                Verb::Delete,
                &self.url(&route),
                "DeleteDeployKey",
                &what,
                until,
                token.young_until(),
            )
            .await?;
        match a.status {
            204 | 404 => Ok(()),
            _ => Err(failure(&what, &a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn rate_limits_are_read_as_github_documents_them() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(rate_limit_wait(403, &h, now), Some(Duration::from_secs(7)));
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1010"),
        ]);
        assert_eq!(rate_limit_wait(403, &h, now), Some(Duration::from_secs(11)));
        assert_eq!(rate_limit_wait(429, &headers(&[]), now), Some(MAX_WAIT));
        // A 403 that is not a rate limit is a permission error, not a reason to wait.
        let h = headers(&[("x-ratelimit-remaining", "4999")]);
        assert_eq!(rate_limit_wait(403, &h, now), None);
        assert_eq!(
            rate_limit_wait(404, &headers(&[("retry-after", "1")]), now),
            None
        );
    }

    #[test]
    fn github_times() {
        let t = parse_time("2026-11-23T01:00:20Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_795_395_620));
        assert_eq!(parse_time("1970-01-01T00:00:00.5Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_time("yesterday"), None);
        // A writer's `expires_at`: far or malformed dates are no time, never a panic.
        for text in [
            "300000000000-01-01T00:00:00Z",
            "+262143-12-31T23:59:59Z",
            "9999999999-12-31T23:59:59Z",
            "1969-12-31T23:59:59Z",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-23T25:00:00Z",
            "2026-11-23T01:00:20",
            "",
        ] {
            assert_eq!(parse_time(text), None, "{text}");
        }
        let far = parse_time("9999-12-31T23:59:59Z").unwrap();
        let token = Token {
            secret: SecretString::new("t".into()),
            minted: Some(far),
        };
        assert!(token.young_until().is_some_and(|t| t > far));
    }

    #[test]
    fn link_headers_and_error_details() {
        let h = headers(&[(
            "link",
            "<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=3>; rel=\"next\", <https://api.github.com/x?page=9>; rel=\"last\"",
        )]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/x?page=3")
        );
        assert_eq!(next_link(&headers(&[])), None);
        let body = json!({"message": "Validation Failed", "errors": [
            {"resource": "PublicKey", "code": "custom", "field": "key", "message": "key is already in use"},
            {"resource": "PublicKey", "code": "missing_field", "field": "title"},
        ]});
        assert_eq!(
            detail(&body),
            "Validation Failed: key is already in use; title missing_field"
        );
    }
}

/// #23.8: GitHub's answers, as `send` and the list and mint calls read them, never panic
/// (`shared::fuzz::CASES` cases each): any body, any rate-limit and `Link` headers.
#[cfg(test)]
mod fuzz_answers {
    use super::*;
    use proptest::prelude::*;
    use shared::fuzz;

    fn headers(pairs: &[(String, String)]) -> http::HeaderMap {
        pairs
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    http::HeaderName::from_bytes(k.as_bytes()).ok()?,
                    http::HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(fuzz::config())]

        #[test]
        fn any_body_is_read(body in fuzz::json(), status in 100u16..600) {
            let _ = detail(&body);
            let a = Answer { status, headers: http::HeaderMap::new(), body: body.clone() };
            let _ = failure("GET /x", &a);
            // What `repositories`, `keys` and `mint` take from a body.
            let _ = body["repositories"].as_array().map(|r| r.iter().filter_map(|r| r["full_name"].as_str()).count());
            if let Some(keys) = body.as_array() {
                for k in keys {
                    let _ = (k["id"].as_u64(), k["title"].as_str(), k["read_only"].as_bool(), k["last_used"].as_str());
                }
            }
            let _ = (body["token"].as_str(), body["expires_at"].as_str());
        }

        #[test]
        fn any_headers_are_read(
            pairs in proptest::collection::vec((
                prop_oneof![Just("retry-after".to_owned()), Just("x-ratelimit-remaining".to_owned()),
                            Just("x-ratelimit-reset".to_owned()), Just("link".to_owned()), "[a-z-]{1,12}"],
                prop_oneof![fuzz::text(), any::<u64>().prop_map(|n| n.to_string()),
                            "(<[ -~]{0,30}>; ?rel=\"(next|prev|last)\",? ?){0,3}"],
            ), 0..5),
            status in prop_oneof![Just(403u16), Just(429), 100u16..600],
            now in any::<u64>(),
            link in fuzz::text(),
        ) {
            let h = headers(&pairs);
            let now = UNIX_EPOCH.checked_add(Duration::from_secs(now)).unwrap_or(UNIX_EPOCH);
            let _ = rate_limit_wait(status, &h, now);
            let _ = next_link(&h);
            let api = Api { base: "https://api.github.com".into() };
            let _ = api.same_origin(&link);
        }
    }
}
