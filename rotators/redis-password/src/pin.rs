//! Which user and which endpoint an ElastiCache or MemoryDB user's secret may touch. Anyone
//! allowed `PutSecretValue` writes the value, `user_arn` and `host` included, and the function's
//! allow-list may name many users; tagging takes `secretsmanager:TagResource`, a right apart. So
//! the secret's tags pin both: `redis:user-arn` names its one user, `redis:endpoint` the only
//! place its passwords are sent (the proof of possession and testSecret). Without a pinned
//! endpoint nothing proves the current password is the user's, and keeping it beside the new one
//! would give whoever planted it a login: that is refused unless the function's
//! `KEEP_UNPROVEN_CURRENT_PASSWORD` accepts it, as AWS's template does.

use crate::secret::DEFAULT_PORT;
use shared::Error;

/// The secret's tag naming the ARN of the one user it rotates.
pub const USER_ARN_TAG: &str = "redis:user-arn";

/// The secret's tag naming where its passwords log in: `host:port` (TLS), `rediss://host:port`
/// (TLS) or `redis://host:port` (no TLS, unless the value asks for it); the port defaults to 6379.
pub const ENDPOINT_TAG: &str = "redis:endpoint";

/// The function's variable that keeps an unproven current password (no `redis:endpoint`).
pub const KEEP_UNPROVEN_CURRENT: &str = "KEEP_UNPROVEN_CURRENT_PASSWORD";

/// `KEEP_UNPROVEN_CURRENT_PASSWORD`: false unless set.
pub fn keep_unproven_current_from_env() -> Result<bool, String> {
    shared::config::flag(
        KEEP_UNPROVEN_CURRENT,
        shared::config::non_empty_env(KEEP_UNPROVEN_CURRENT).as_deref(),
        false,
    )
}

/// Where the passwords of a pinned secret log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// The secret's pinning tags, as `DescribeSecret` gave them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tags<'a> {
    pub user_arn: Option<&'a str>,
    pub endpoint: Option<&'a str>,
}

/// What a value of version `which` says of its user and endpoint (`host`, `port`, `ssl`).
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub which: &'static str,
    pub user_arn: &'a str,
    pub endpoint: Option<(&'a str, u16, bool)>,
}

/// The endpoint where the claim's passwords may log in, or `None` when none is pinned and the
/// function keeps an unproven current password; an error naming the field and the tag when the
/// value asks for another user or endpoint than the tags, or a tag is missing.
pub fn pin(
    claim: Claim<'_>,
    tags: Tags<'_>,
    keep_unproven_current: bool,
) -> Result<Option<Endpoint>, Error> {
    let refuse = |problem: String| Err(Error::value(claim.which, problem));
    match tags.user_arn {
        None => {
            return refuse(format!(
                "field `user_arn` is not pinned: the secret has no tag {USER_ARN_TAG}, so nothing is changed. \
                 Tag the secret {USER_ARN_TAG}=<its user's ARN> (secretsmanager:TagResource)"
            ));
        }
        Some(pinned) if pinned != claim.user_arn => {
            return refuse(format!(
                "field `user_arn` is {} but the secret's tag {USER_ARN_TAG} pins {pinned}; nothing is changed",
                claim.user_arn
            ));
        }
        Some(_) => {}
    }
    let Some(tag) = tags.endpoint else {
        if let Some((host, port, _)) = claim.endpoint {
            return refuse(format!(
                "field `host` names {host}:{port} but the secret has no tag {ENDPOINT_TAG}: passwords go only \
                 to an endpoint the tag names. Tag the secret {ENDPOINT_TAG}=host:port"
            ));
        }
        if keep_unproven_current {
            return Ok(None);
        }
        return refuse(format!(
            "field `host` is missing and the secret has no tag {ENDPOINT_TAG}, so nothing proves the current \
             password is the user's, and keeping it beside the new one would give whoever wrote it a login; \
             nothing is changed. Tag the secret {ENDPOINT_TAG}=host:port of a cluster of the user, or set the \
             function's {KEEP_UNPROVEN_CURRENT}=true to keep it unproven as AWS's template does"
        ));
    };
    let pinned = parse_endpoint(tag).ok_or_else(|| {
        Error::target(format!(
            "the secret's tag {ENDPOINT_TAG} is {tag:?}, not host:port (rediss://host:port, or redis://host:port \
             for no TLS)"
        ))
    })?;
    let Some((host, port, ssl)) = claim.endpoint else {
        return Ok(Some(pinned));
    };
    if host != pinned.host || port != pinned.port {
        return refuse(format!(
            "fields `host` and `port` name {host}:{port} but the secret's tag {ENDPOINT_TAG} pins {}:{}; \
             nothing is changed",
            pinned.host, pinned.port
        ));
    }
    // The value may ask for TLS where the tag does not, never the other way.
    Ok(Some(Endpoint {
        tls: pinned.tls || ssl,
        ..pinned
    }))
}

fn parse_endpoint(tag: &str) -> Option<Endpoint> {
    let (tls, rest) = match tag.trim().split_once("://") {
        None => (true, tag.trim()),
        Some(("rediss", rest)) => (true, rest),
        Some(("redis", rest)) => (false, rest),
        Some(_) => return None,
    };
    let (host, port) = match rest.rsplit_once(':') {
        None => (rest, DEFAULT_PORT),
        Some((host, port)) => (host, port.parse::<u16>().ok().filter(|p| *p > 0)?),
    };
    let bad = |c: char| c.is_control() || c.is_whitespace() || "/@:[]".contains(c);
    (!host.is_empty() && host.len() <= 253 && !host.contains(bad)).then(|| Endpoint {
        host: host.to_owned(),
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::{AWSCURRENT, AWSPENDING};

    const B: &str = "arn:aws:elasticache:us-east-1:123456789012:user:b";
    const A: &str = "arn:aws:elasticache:us-east-1:123456789012:user:a";

    fn at(host: &str, port: u16, tls: bool) -> Option<Endpoint> {
        Some(Endpoint {
            host: host.into(),
            port,
            tls,
        })
    }

    #[test]
    fn the_tags_pin_the_user_and_the_endpoint() {
        let claim = |user_arn, endpoint| Claim {
            which: AWSCURRENT,
            user_arn,
            endpoint,
        };
        let tags = |user_arn, endpoint| Tags { user_arn, endpoint };
        let pinned = Some("c.example:6379");
        // The endpoint, or the words of the error.
        type Want = Result<Option<Endpoint>, &'static [&'static str]>;
        // (claim, tags, keep unproven current, what comes out)
        let cases: &[(Claim, Tags, bool, Want)] = &[
            (
                claim(B, None),
                tags(Some(B), pinned),
                false,
                Ok(at("c.example", 6379, true)),
            ),
            (
                claim(B, Some(("c.example", 6379, false))),
                tags(Some(B), pinned),
                false,
                Ok(at("c.example", 6379, true)),
            ),
            (
                claim(B, None),
                tags(Some(B), Some("redis://c.example:7000")),
                false,
                Ok(at("c.example", 7000, false)),
            ),
            (
                claim(B, Some(("c.example", 7000, true))),
                tags(Some(B), Some("redis://c.example:7000")),
                false,
                Ok(at("c.example", 7000, true)),
            ),
            (
                claim(B, None),
                tags(Some(B), Some("rediss://c.example")),
                false,
                Ok(at("c.example", 6379, true)),
            ),
            (claim(B, None), tags(Some(B), None), true, Ok(None)),
            // Another allowed user: refused whatever else the value says.
            (
                claim(A, None),
                tags(Some(B), pinned),
                true,
                Err(&["field `user_arn`", A, "tag redis:user-arn pins", B]),
            ),
            (
                claim(B, None),
                tags(None, pinned),
                true,
                Err(&["field `user_arn` is not pinned", "no tag redis:user-arn"]),
            ),
            // A writer's host gets nothing, with or without a pinned endpoint.
            (
                claim(B, Some(("attacker.example", 6379, false))),
                tags(Some(B), pinned),
                false,
                Err(&[
                    "fields `host` and `port`",
                    "attacker.example:6379",
                    "tag redis:endpoint pins c.example:6379",
                ]),
            ),
            (
                claim(B, Some(("c.example", 6380, true))),
                tags(Some(B), pinned),
                false,
                Err(&["fields `host` and `port`", "c.example:6380"]),
            ),
            (
                claim(B, Some(("attacker.example", 6379, false))),
                tags(Some(B), None),
                true,
                Err(&["field `host`", "no tag redis:endpoint"]),
            ),
            // No endpoint: the current password cannot be proven, so it is not kept unless asked.
            (
                claim(B, None),
                tags(Some(B), None),
                false,
                Err(&[
                    "no tag redis:endpoint",
                    "KEEP_UNPROVEN_CURRENT_PASSWORD=true",
                ]),
            ),
            (
                claim(B, None),
                tags(Some(B), Some("http://c.example:1")),
                false,
                Err(&["tag redis:endpoint", "\"http://c.example:1\""]),
            ),
            (
                claim(B, None),
                tags(Some(B), Some("c.example:0")),
                false,
                Err(&["tag redis:endpoint"]),
            ),
            (
                claim(B, None),
                tags(Some(B), Some("u@c.example:1")),
                false,
                Err(&["tag redis:endpoint"]),
            ),
            (
                claim(B, None),
                tags(Some(B), Some(":6379")),
                false,
                Err(&["tag redis:endpoint"]),
            ),
        ];
        for (claim, tags, keep, want) in cases {
            let got = pin(*claim, *tags, *keep).map_err(|e| e.to_string());
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{claim:?} {tags:?} {keep}"),
                (Err(words), Err(g)) => {
                    for w in *words {
                        assert!(
                            g.contains(w),
                            "{claim:?} {tags:?} {keep}: {g:?} lacks {w:?}"
                        );
                    }
                }
                _ => panic!("{claim:?} {tags:?} {keep}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn errors_name_the_version() {
        let claim = Claim {
            which: AWSPENDING,
            user_arn: A,
            endpoint: None,
        };
        let tags = Tags {
            user_arn: Some(B),
            endpoint: None,
        };
        let err = pin(claim, tags, true).unwrap_err().to_string();
        assert!(err.contains("AWSPENDING"), "{err}");
    }
}
