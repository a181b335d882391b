//! The GitHub calls, through octocrab: App JWT auth to mint installation tokens, installation
//! tokens for everything else.

use octocrab::Octocrab;
use octocrab::models::AppId;
use serde_json::{Value, json};
use shared::{Error, SecretString};

pub struct Api {
    /// `GITHUB_API_URL`, e.g. `https://github.example.com/api/v3` for GitHub Enterprise Server.
    pub base: String,
}

/// An installation token as GitHub returned it.
pub struct Minted {
    pub token: SecretString,
    pub expires_at: String,
    pub permissions: Value,
}

pub struct DeployKey {
    pub id: u64,
    pub title: String,
    pub key: String,
    pub read_only: bool,
}

fn gh_error(what: &str, e: octocrab::Error) -> Error {
    match e {
        octocrab::Error::GitHub { source, .. } => Error::target(format!(
            "GitHub {what}: HTTP {} {}",
            source.status_code.as_u16(),
            source.message
        )),
        other => Error::target(format!("GitHub {what}: {other}")),
    }
}

fn status(e: &octocrab::Error) -> Option<u16> {
    match e {
        octocrab::Error::GitHub { source, .. } => Some(source.status_code.as_u16()),
        _ => None,
    }
}

/// Marks the end of an external call: a crash point in fault-injection test builds.
fn called<T>(what: &str, result: T) -> T {
    shared::fault::after_call(what);
    result
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
            .map_err(|e| gh_error("client", e))
    }

    fn with_token(&self, token: &SecretString) -> Result<Octocrab, Error> {
        self.builder()?
            .personal_token(token.expose().to_owned())
            .build()
            .map_err(|e| gh_error("client", e))
    }

    /// `POST /app/installations/{id}/access_tokens`, scoped by `scope` (repositories, permissions).
    pub async fn mint(
        &self,
        app_id: u64,
        pem: &SecretString,
        installation_id: u64,
        scope: &Value,
    ) -> Result<Minted, Error> {
        let app = self.app(app_id, pem)?;
        let route = format!("/app/installations/{installation_id}/access_tokens");
        let out: Value = called(
            "CreateInstallationToken",
            app.post(&route, Some(scope)).await,
        )
        .map_err(|e| gh_error(&format!("POST {route}"), e))?;
        let token = out["token"]
            .as_str()
            .ok_or_else(|| Error::target("GitHub returned no token"))?;
        Ok(Minted {
            token: SecretString::from(token),
            expires_at: out["expires_at"].as_str().unwrap_or_default().to_owned(),
            permissions: out["permissions"].clone(),
        })
    }

    /// `DELETE /installation/token`; a token that is already dead (401) counts as revoked.
    pub async fn revoke(&self, token: &SecretString) -> Result<(), Error> {
        let client = self.with_token(token)?;
        let uri = format!("{}/installation/token", self.base.trim_end_matches('/'));
        let result = match client._delete(uri, None::<&()>).await {
            Ok(response) => octocrab::map_github_error(response).await.map(drop),
            Err(e) => Err(e),
        };
        match called("RevokeInstallationToken", result) {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(401) => Ok(()),
            Err(e) => Err(gh_error("DELETE /installation/token", e)),
        }
    }

    /// `GET /installation/repositories`: the full names the token reaches.
    pub async fn repositories(&self, token: &SecretString) -> Result<Vec<String>, Error> {
        let client = self.with_token(token)?;
        let out: Value = called(
            "ListInstallationRepositories",
            client.get("/installation/repositories", None::<&()>).await,
        )
        .map_err(|e| gh_error("GET /installation/repositories", e))?;
        Ok(out["repositories"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["full_name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn keys(
        &self,
        token: &SecretString,
        owner: &str,
        repo: &str,
    ) -> Result<Vec<DeployKey>, Error> {
        let client = self.with_token(token)?;
        let route = format!("/repos/{owner}/{repo}/keys");
        let out: Vec<Value> = called("ListDeployKeys", client.get(&route, None::<&()>).await)
            .map_err(|e| gh_error(&format!("GET {route}"), e))?;
        Ok(out
            .iter()
            .map(|k| DeployKey {
                id: k["id"].as_u64().unwrap_or_default(),
                title: k["title"].as_str().unwrap_or_default().to_owned(),
                key: k["key"].as_str().unwrap_or_default().to_owned(),
                read_only: k["read_only"].as_bool().unwrap_or(false),
            })
            .collect())
    }

    pub async fn add_key(
        &self,
        token: &SecretString,
        owner: &str,
        repo: &str,
        title: &str,
        key: &str,
        read_only: bool,
    ) -> Result<(), Error> {
        let client = self.with_token(token)?;
        let route = format!("/repos/{owner}/{repo}/keys");
        let body = json!({"title": title, "key": key, "read_only": read_only});
        let _: Value = called("CreateDeployKey", client.post(&route, Some(&body)).await)
            .map_err(|e| gh_error(&format!("POST {route}"), e))?;
        Ok(())
    }

    /// Deletes a deploy key; one already gone (404) counts as deleted.
    pub async fn delete_key(
        &self,
        token: &SecretString,
        owner: &str,
        repo: &str,
        id: u64,
    ) -> Result<(), Error> {
        let client = self.with_token(token)?;
        let route = format!("/repos/{owner}/{repo}/keys/{id}");
        let uri = format!("{}{route}", self.base.trim_end_matches('/'));
        let result = match client._delete(uri, None::<&()>).await {
            Ok(response) => octocrab::map_github_error(response).await.map(drop),
            Err(e) => Err(e),
        };
        match called("DeleteDeployKey", result) {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(gh_error(&format!("DELETE {route}"), e)),
        }
    }
}
