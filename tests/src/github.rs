//! A stateful GitHub API stand-in on loopback, for the GitHub rotator's tests. It checks what
//! GitHub checks: App JWTs are RS256, signed by the App's key, with a valid `iat`/`exp` window;
//! installation tokens expire, can be revoked, and a revoked, expired or unknown token gets 401,
//! as does a token in its first `token_warmup` (GitHub may refuse a token minted a moment ago,
//! before it reached every server: its clients retry such a 401 for a few seconds);
//! tokens are scoped to repositories and permissions; deploy keys are stored per repository.
//! Lists page as GitHub's do (`per_page` 30 by default, at most 100, `page`, and a `Link` header
//! with `first`/`prev`/`next`/`last`); a rate limit can be switched on (primary: 403 with
//! `x-ratelimit-remaining: 0` and `x-ratelimit-reset`; secondary: 429 with `Retry-After`);
//! validation failures carry `errors[]` as GitHub's do.
//! Every exchange is recorded, so the tests can check it against GitHub's OpenAPI description.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

pub struct Installation {
    pub app_id: u64,
    /// `owner/name` of every repository the App is installed on.
    pub repos: Vec<String>,
    pub permissions: Map<String, Value>,
    /// GitHub answers 403 to a suspended installation's token requests.
    pub suspended: bool,
}

struct Token {
    /// When it was minted, on the stand-in's clock.
    minted: SystemTime,
    repos: Vec<String>,
    permissions: Map<String, Value>,
    expires: SystemTime,
    revoked: bool,
}

#[derive(Clone)]
pub struct DeployKey {
    pub id: u64,
    pub title: String,
    pub key: String,
    pub read_only: bool,
    /// When the key was last used (set by the tests; GitHub tracks it).
    pub last_used: Option<String>,
}

/// One request and its answer, for the OpenAPI check.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub request: Option<Value>,
    pub status: u16,
    pub response: Option<Value>,
}

/// A rate limit in force until `until`.
#[derive(Clone, Copy)]
pub struct RateLimit {
    pub until: SystemTime,
    /// Secondary limit: 429 with `Retry-After`; else primary: 403 with the `x-ratelimit-*` headers.
    pub secondary: bool,
}

#[derive(Default)]
pub struct State {
    pub rate_limit: Option<RateLimit>,
    /// GitHub is down: every request gets 503.
    pub outage: bool,
    /// Installations whose token requests get 503 (an outage for some installations only).
    pub outage_for: std::collections::BTreeSet<u64>,
    /// How far the stand-in's clock for installation tokens runs ahead of the real one, to let
    /// tokens expire without waiting an hour.
    pub clock_ahead: Duration,
    /// Requests answered with a rate limit, and every request.
    pub limited: usize,
    pub requests: usize,
    /// Headers of the answer being built (paging links, rate-limit headers).
    reply_headers: Vec<(String, String)>,
    apps: BTreeMap<u64, String>,
    pub installations: BTreeMap<u64, Installation>,
    tokens: BTreeMap<String, Token>,
    pub keys: BTreeMap<String, Vec<DeployKey>>,
    next_id: u64,
    pub exchanges: Vec<Exchange>,
    /// How long new installation tokens live (GitHub: one hour).
    pub token_lifetime: Duration,
    /// How long a new token is answered 401 (`GitHub::start` sets a second).
    pub token_warmup: Duration,
}

impl State {
    /// The stand-in's clock for token expiry.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.clock_ahead
    }

    /// Tokens that are neither revoked nor expired.
    pub fn live_tokens(&self) -> usize {
        let now = self.now();
        self.tokens
            .values()
            .filter(|t| !t.revoked && t.expires > now)
            .count()
    }

    pub fn token_is_live(&self, token: &str) -> bool {
        self.tokens
            .get(token)
            .is_some_and(|t| !t.revoked && t.expires > self.now())
    }
}

pub struct GitHub {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl GitHub {
    /// Starts the stand-in with one App (its public key PEM) installed as `installations`.
    pub async fn start(
        app_id: u64,
        app_public_pem: &str,
        installations: Vec<(u64, Installation)>,
    ) -> Self {
        let mut state = State {
            token_lifetime: Duration::from_secs(3600),
            token_warmup: Duration::from_secs(1),
            next_id: 1000,
            ..State::default()
        };
        state.apps.insert(app_id, app_public_pem.to_owned());
        state.installations.extend(installations);
        for inst in state.installations.values() {
            for repo in &inst.repos {
                state.keys.entry(repo.clone()).or_default();
            }
        }
        let state = Arc::new(Mutex::new(state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state }
    }

    /// A live installation token minted outside any rotation (a secret's starting value).
    pub fn seed_token(&self, installation: u64) -> String {
        let mut st = self.state.lock().unwrap();
        let inst = &st.installations[&installation];
        let token = Token {
            // Minted a while ago: past its warm-up.
            minted: st.now() - Duration::from_secs(60),
            repos: inst.repos.clone(),
            permissions: inst.permissions.clone(),
            expires: st.now() + st.token_lifetime,
            revoked: false,
        };
        let value = format!("ghs_seed{}", shared::random::version_id().replace('-', ""));
        st.tokens.insert(value.clone(), token);
        value
    }

    /// Registers a deploy key, as a rotation (or a person) would have.
    pub fn seed_key(&self, repo: &str, title: &str, key: &str) {
        let mut st = self.state.lock().unwrap();
        st.next_id += 1;
        let id = st.next_id;
        st.keys.get_mut(repo).unwrap().push(DeployKey {
            id,
            title: title.into(),
            key: key.into(),
            read_only: true,
            last_used: None,
        });
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.lock().unwrap().exchanges.clone()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Now, as GitHub writes times.
pub fn iso_now() -> String {
    iso(SystemTime::now())
}

fn iso(t: SystemTime) -> String {
    // RFC 3339 in UTC without a date library: days from the epoch to a civil date.
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn error(status: StatusCode, message: &str) -> (StatusCode, Option<Value>) {
    (
        status,
        Some(json!({"message": message, "documentation_url": "https://docs.github.com/rest"})),
    )
}

#[derive(serde::Deserialize)]
struct Claims {
    iat: u64,
    exp: u64,
    /// GitHub takes the App id as a number or a string.
    iss: Value,
}

/// The App an RS256 JWT was signed for, if its signature and time window are valid.
fn app_of(state: &State, jwt: &str) -> Result<u64, &'static str> {
    let header =
        jsonwebtoken::decode_header(jwt).map_err(|_| "A JSON web token could not be decoded")?;
    if header.alg != Algorithm::RS256 {
        return Err("'Algorithm' must be RS256");
    }
    for (id, pem) in &state.apps {
        let key = DecodingKey::from_rsa_pem(pem.as_bytes()).expect("a public key PEM");
        let mut v = Validation::new(Algorithm::RS256);
        // `iss` is checked below: GitHub takes it as a number, which the library rejects.
        v.set_required_spec_claims(&["iat", "exp"]);
        v.leeway = 0;
        let decoded = jsonwebtoken::decode::<Claims>(jwt, &key, &v);
        if let Ok(data) = decoded {
            let c = data.claims;
            let iss = c
                .iss
                .as_u64()
                .map(|n| n.to_string())
                .or_else(|| c.iss.as_str().map(str::to_owned));
            if iss != Some(id.to_string()) {
                return Err("'Issuer' claim ('iss') must be the App's id");
            }
            if c.iat > now() + 60 || c.exp <= now() || c.exp.saturating_sub(c.iat) > 660 {
                return Err("'Expiration time' claim ('exp') is too far in the future");
            }
            return Ok(*id);
        }
    }
    Err("A JSON web token could not be decoded")
}

fn bearer(req: &hyper::http::request::Parts) -> Option<String> {
    let h = req.headers.get("authorization")?.to_str().ok()?;
    h.strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("token "))
        .map(str::to_owned)
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let request: Option<Value> = serde_json::from_slice(&bytes).ok();
    let path = parts.uri.path().to_owned();
    let mut st = state.lock().unwrap();
    st.requests += 1;
    st.reply_headers.clear();
    let (status, response) = if st.outage {
        error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
    } else {
        match limit(&mut st) {
            Some(answer) => answer,
            None => route(&mut st, &parts, &path, request.as_ref()),
        }
    };
    st.exchanges.push(Exchange {
        method: parts.method.to_string(),
        path: path.clone(),
        request: request.clone(),
        status: status.as_u16(),
        response: response.clone(),
    });
    let body = response.map(|v| v.to_string()).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        "application/json; charset=utf-8".parse().unwrap(),
    );
    for (k, v) in st.reply_headers.drain(..) {
        r.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    Ok(r)
}

/// The rate limit's answer while it is in force.
fn limit(st: &mut State) -> Option<(StatusCode, Option<Value>)> {
    let rl = st.rate_limit.filter(|rl| rl.until > SystemTime::now())?;
    st.limited += 1;
    let reset = rl.until.duration_since(UNIX_EPOCH).unwrap().as_secs() + 1;
    let wait = reset.saturating_sub(now());
    if rl.secondary {
        st.reply_headers
            .push(("retry-after".into(), wait.to_string()));
        Some(error(
            StatusCode::TOO_MANY_REQUESTS,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        ))
    } else {
        st.reply_headers.extend([
            ("x-ratelimit-limit".into(), "5000".into()),
            ("x-ratelimit-remaining".into(), "0".into()),
            ("x-ratelimit-reset".into(), reset.to_string()),
            ("x-ratelimit-resource".into(), "core".into()),
        ]);
        Some(error(
            StatusCode::FORBIDDEN,
            "API rate limit exceeded for installation ID 1.",
        ))
    }
}

/// One page of `items` as GitHub pages lists: `per_page` (default 30, at most 100) and `page`
/// (from 1) from the query, and a `Link` header naming the other pages.
fn page(
    st: &mut State,
    req: &hyper::http::request::Parts,
    path: &str,
    items: Vec<Value>,
) -> Vec<Value> {
    let query: BTreeMap<String, String> = req
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let per_page = query
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let host = req
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let link = |n: usize, rel: &str| {
        format!("<http://{host}{path}?per_page={per_page}&page={n}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
        links.push(link(1, "first"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if !links.is_empty() {
        st.reply_headers.push(("link".into(), links.join(", ")));
    }
    items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect()
}

/// GitHub's 422 with the details in `errors[]`.
fn validation_failed(
    field: &str,
    code: &str,
    message: Option<&str>,
) -> (StatusCode, Option<Value>) {
    let mut e = json!({"resource": "PublicKey", "code": code, "field": field});
    if let Some(m) = message {
        e["message"] = json!(m);
    }
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Some(json!({"message": "Validation Failed", "errors": [e],
                    "documentation_url": "https://docs.github.com/rest/deploy-keys/deploy-keys#create-a-deploy-key"})),
    )
}

fn route(
    st: &mut State,
    req: &hyper::http::request::Parts,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Option<Value>) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let Some(credential) = bearer(req) else {
        return error(StatusCode::UNAUTHORIZED, "Requires authentication");
    };
    match (&req.method, segs.as_slice()) {
        (&Method::GET, ["app", "installations", id]) => {
            let app = match app_of(st, &credential) {
                Ok(app) => app,
                Err(m) => return error(StatusCode::UNAUTHORIZED, m),
            };
            let Some((inst_id, inst)) = id
                .parse::<u64>()
                .ok()
                .and_then(|i| st.installations.get(&i).map(|x| (i, x)))
                .filter(|(_, x)| x.app_id == app)
            else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let when = "2026-01-01T00:00:00Z";
            (
                StatusCode::OK,
                Some(json!({
                    "id": inst_id, "app_id": app, "app_slug": "rotation-app", "target_id": 1,
                    "target_type": "Organization", "single_file_name": null,
                    "repository_selection": "selected",
                    "access_tokens_url": format!("https://api.github.local/app/installations/{inst_id}/access_tokens"),
                    "html_url": format!("https://github.local/organizations/acme/settings/installations/{inst_id}"),
                    "repositories_url": "https://api.github.local/installation/repositories",
                    "events": [], "account": null, "permissions": inst.permissions,
                    "created_at": when, "updated_at": when, "suspended_by": null,
                    "suspended_at": if inst.suspended { json!(when) } else { Value::Null },
                })),
            )
        }
        (&Method::POST, ["app", "installations", id, "access_tokens"]) => {
            let app = match app_of(st, &credential) {
                Ok(app) => app,
                Err(m) => return error(StatusCode::UNAUTHORIZED, m),
            };
            let Some(inst_id) = id
                .parse::<u64>()
                .ok()
                .filter(|i| st.installations.get(i).is_some_and(|x| x.app_id == app))
            else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            if st.outage_for.contains(&inst_id) {
                return error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
            }
            let inst = &st.installations[&inst_id];
            if inst.suspended {
                return error(
                    StatusCode::FORBIDDEN,
                    "This installation has been suspended",
                );
            }
            let owner = inst
                .repos
                .first()
                .and_then(|r| r.split('/').next())
                .unwrap_or("")
                .to_owned();
            let repos = match body
                .and_then(|b| b.get("repositories"))
                .and_then(Value::as_array)
            {
                None => inst.repos.clone(),
                Some(names) => {
                    let mut repos = Vec::new();
                    for n in names {
                        let full = format!("{owner}/{}", n.as_str().unwrap_or(""));
                        if !inst.repos.contains(&full) {
                            return error(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                "There is at least one repository that does not exist or is not accessible to the parent installation.",
                            );
                        }
                        repos.push(full);
                    }
                    repos
                }
            };
            let permissions = match body
                .and_then(|b| b.get("permissions"))
                .and_then(Value::as_object)
            {
                None => inst.permissions.clone(),
                Some(asked) => {
                    for (k, v) in asked {
                        let granted = inst.permissions.get(k).and_then(Value::as_str);
                        let ok = matches!(
                            (granted, v.as_str()),
                            (Some("write"), Some("read" | "write")) | (Some("read"), Some("read"))
                        );
                        if !ok {
                            return error(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                "The permissions requested are not granted to this installation.",
                            );
                        }
                    }
                    asked.clone()
                }
            };
            st.next_id += 1;
            let mut raw = [0u8; 18];
            shared::random::fill(&mut raw);
            let token = format!(
                "ghs_{}",
                raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            let expires = st.now() + st.token_lifetime;
            let scoped = body.and_then(|b| b.get("repositories")).is_some();
            let mut answer = json!({
                "token": token,
                "expires_at": iso(expires),
                "permissions": permissions,
                "repository_selection": if scoped { "selected" } else { "all" },
            });
            if scoped {
                answer["repositories"] = Value::Array(repos.iter().map(|r| repo_json(r)).collect());
            }
            st.tokens.insert(
                token,
                Token {
                    minted: st.now(),
                    repos,
                    permissions,
                    expires,
                    revoked: false,
                },
            );
            (StatusCode::CREATED, Some(answer))
        }
        (method, rest) => {
            let now = st.now();
            let warmup = st.token_warmup;
            let Some(token) = st
                .tokens
                .get(&credential)
                .filter(|t| !t.revoked && t.expires > now && t.minted + warmup <= now)
            else {
                return error(StatusCode::UNAUTHORIZED, "Bad credentials");
            };
            let (repos, perms) = (token.repos.clone(), token.permissions.clone());
            match (method, rest) {
                (&Method::GET, ["installation", "repositories"]) => {
                    let list: Vec<Value> = repos.iter().map(|r| repo_json(r)).collect();
                    let total = list.len();
                    let list = page(st, req, path, list);
                    (
                        StatusCode::OK,
                        Some(json!({"total_count": total, "repositories": list})),
                    )
                }
                (&Method::DELETE, ["installation", "token"]) => {
                    st.tokens.get_mut(&credential).unwrap().revoked = true;
                    (StatusCode::NO_CONTENT, None)
                }
                (m, ["repos", owner, name, "keys", rest @ ..]) => {
                    let full = format!("{owner}/{name}");
                    if !repos.contains(&full) || !st.keys.contains_key(&full) {
                        return error(StatusCode::NOT_FOUND, "Not Found");
                    }
                    let admin = perms.get("administration").and_then(Value::as_str);
                    let needed = if *m == Method::GET {
                        admin.is_some()
                    } else {
                        admin == Some("write")
                    };
                    if !needed {
                        return error(
                            StatusCode::FORBIDDEN,
                            "Resource not accessible by integration",
                        );
                    }
                    deploy_keys(st, req, path, m, &full, rest, body)
                }
                _ => error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
    }
}

/// A repository as GitHub's API returns it, with every field its schema requires.
fn repo_json(full: &str) -> Value {
    let (owner, name) = full.split_once('/').unwrap();
    let base = format!("https://api.github.local/repos/{full}");
    let mut repo = Map::new();
    for field in [
        "archive_url",
        "assignees_url",
        "blobs_url",
        "branches_url",
        "collaborators_url",
        "comments_url",
        "commits_url",
        "compare_url",
        "contents_url",
        "contributors_url",
        "deployments_url",
        "downloads_url",
        "events_url",
        "forks_url",
        "git_commits_url",
        "git_refs_url",
        "git_tags_url",
        "hooks_url",
        "issue_comment_url",
        "issue_events_url",
        "issues_url",
        "keys_url",
        "labels_url",
        "languages_url",
        "merges_url",
        "milestones_url",
        "notifications_url",
        "pulls_url",
        "releases_url",
        "stargazers_url",
        "statuses_url",
        "subscribers_url",
        "subscription_url",
        "tags_url",
        "teams_url",
        "trees_url",
    ] {
        repo.insert(
            field.into(),
            json!(format!("{base}/{}", field.trim_end_matches("_url"))),
        );
    }
    let mut user = Map::new();
    for field in [
        "avatar_url",
        "events_url",
        "followers_url",
        "following_url",
        "gists_url",
        "html_url",
        "organizations_url",
        "received_events_url",
        "repos_url",
        "starred_url",
        "subscriptions_url",
        "url",
    ] {
        user.insert(
            field.into(),
            json!(format!("https://api.github.local/users/{owner}/{field}")),
        );
    }
    user.extend([
        ("login".into(), json!(owner)),
        ("id".into(), json!(1)),
        ("node_id".into(), json!("O_1")),
        ("gravatar_id".into(), json!("")),
        ("site_admin".into(), json!(false)),
        ("type".into(), json!("Organization")),
    ]);
    let when = "2026-01-01T00:00:00Z";
    repo.extend([
        ("id".into(), json!(full.len())),
        ("node_id".into(), json!(format!("R_{name}"))),
        ("name".into(), json!(name)),
        ("full_name".into(), json!(full)),
        ("owner".into(), Value::Object(user)),
        ("private".into(), json!(true)),
        ("description".into(), Value::Null),
        ("fork".into(), json!(false)),
        ("url".into(), json!(base)),
        (
            "html_url".into(),
            json!(format!("https://github.local/{full}")),
        ),
        (
            "clone_url".into(),
            json!(format!("https://github.local/{full}.git")),
        ),
        (
            "git_url".into(),
            json!(format!("git://github.local/{full}.git")),
        ),
        (
            "ssh_url".into(),
            json!(format!("git@github.local:{full}.git")),
        ),
        (
            "svn_url".into(),
            json!(format!("https://github.local/{full}")),
        ),
        ("mirror_url".into(), Value::Null),
        ("homepage".into(), Value::Null),
        ("language".into(), Value::Null),
        ("license".into(), Value::Null),
        ("default_branch".into(), json!("main")),
        ("forks".into(), json!(0)),
        ("forks_count".into(), json!(0)),
        ("open_issues".into(), json!(0)),
        ("open_issues_count".into(), json!(0)),
        ("stargazers_count".into(), json!(0)),
        ("watchers".into(), json!(0)),
        ("watchers_count".into(), json!(0)),
        ("size".into(), json!(1)),
        ("has_downloads".into(), json!(true)),
        ("has_issues".into(), json!(true)),
        ("has_projects".into(), json!(false)),
        ("has_wiki".into(), json!(false)),
        ("has_pages".into(), json!(false)),
        ("archived".into(), json!(false)),
        ("disabled".into(), json!(false)),
        ("pushed_at".into(), json!(when)),
        ("created_at".into(), json!(when)),
        ("updated_at".into(), json!(when)),
    ]);
    Value::Object(repo)
}

fn key_json(k: &DeployKey) -> Value {
    json!({"id": k.id, "key": k.key, "url": format!("https://api.github.local/keys/{}", k.id), "title": k.title,
           "verified": true, "created_at": "2026-01-01T00:00:00Z", "read_only": k.read_only,
           "last_used": k.last_used})
}

fn deploy_keys(
    st: &mut State,
    req: &hyper::http::request::Parts,
    path: &str,
    m: &Method,
    repo: &str,
    rest: &[&str],
    body: Option<&Value>,
) -> (StatusCode, Option<Value>) {
    st.next_id += 1;
    let next_id = st.next_id;
    if (m, rest) == (&Method::GET, &[][..]) {
        let all: Vec<Value> = st.keys[repo].iter().map(key_json).collect();
        return (StatusCode::OK, Some(Value::Array(page(st, req, path, all))));
    }
    let keys = st.keys.get_mut(repo).unwrap();
    match (m, rest) {
        (&Method::POST, []) => {
            let Some(key) = body.and_then(|b| b["key"].as_str()) else {
                return validation_failed("key", "missing_field", None);
            };
            if ssh_key::PublicKey::from_openssh(key).is_err() {
                return validation_failed(
                    "key",
                    "custom",
                    Some("key is invalid. You must supply a key in OpenSSH public key format"),
                );
            }
            if keys.iter().any(|k| k.key == key) {
                return validation_failed("key", "custom", Some("key is already in use"));
            }
            let k = DeployKey {
                id: next_id,
                title: body
                    .and_then(|b| b["title"].as_str())
                    .unwrap_or("")
                    .to_owned(),
                key: key.to_owned(),
                read_only: body.and_then(|b| b["read_only"].as_bool()).unwrap_or(false),
                last_used: None,
            };
            let answer = key_json(&k);
            keys.push(k);
            (StatusCode::CREATED, Some(answer))
        }
        (&Method::DELETE, [id]) => {
            let before = keys.len();
            keys.retain(|k| k.id.to_string() != *id);
            if keys.len() == before {
                error(StatusCode::NOT_FOUND, "Not Found")
            } else {
                (StatusCode::NO_CONTENT, None)
            }
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// The tags that pin what a GitHub secret may mint, as the README documents them (and
/// `rotators/github-token/src/pin.rs` reads them), from a test's value: its App, installation and
/// key secret; a token's repositories and the permission `ceiling` (`name=level ...`); a deploy
/// key's repository and access.
pub fn pin_tags(value: &Value, ceiling: &str) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut tags = vec![
        ("github:app-id".to_string(), text(&value["app_id"])),
        (
            "github:installation-id".to_string(),
            text(&value["installation_id"]),
        ),
        (
            "github:private-key-secret-arn".to_string(),
            text(&value["private_key_secret_arn"]),
        ),
    ];
    if value["kind"] == "deploy-key" {
        let repo = format!("{}/{}", text(&value["owner"]), text(&value["repo"]));
        tags.push(("github:repository".into(), repo));
        if value["read_only"] == json!(false) {
            tags.push(("github:deploy-key-access".into(), "read-write".into()));
        }
    } else {
        tags.push(("github:permissions".into(), ceiling.into()));
        if let Some(repos) = value["repositories"].as_array() {
            let names: Vec<String> = repos.iter().map(text).collect();
            tags.push(("github:repositories".into(), names.join(" ")));
        }
    }
    tags
}

/// Tags a secret (`TagResource`: the right a value's writer does not need).
pub async fn tag(client: &aws_sdk_secretsmanager::Client, arn: &str, tags: &[(String, String)]) {
    let mut call = client.tag_resource().secret_id(arn);
    for (k, v) in tags {
        call = call.tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(k)
                .value(v)
                .build(),
        );
    }
    call.send().await.unwrap_or_else(|e| {
        panic!(
            "TagResource {arn}: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(e)
        )
    });
}

/// Checks exchanges against GitHub's OpenAPI description (`tests/openapi_check.py`, with the
/// description that `scripts/setup` fetched from npm). Returns the checker's summary line.
pub fn check_openapi(exchanges: &[Exchange]) -> Result<String, String> {
    use std::io::Write;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let spec = std::env::var("TEST_GITHUB_OPENAPI").expect("TEST_GITHUB_OPENAPI: run scripts/test");
    let list: Vec<Value> = exchanges
        .iter()
        .map(|x| json!({"method": x.method, "path": x.path, "request": x.request, "status": x.status, "response": x.response}))
        .collect();
    let mut child = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/openapi_check.py"))
        .arg(spec)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run tests/openapi_check.py with the venv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(list).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_395_620);
        assert_eq!(super::iso(t), "2026-11-23T01:00:20Z");
    }
}
