//! [`Directory`] through a municipality's OpenID provider, with `openidconnect`: discovery
//! (cached for [`DISCOVERY_LIFETIME`]), the authorization code flow with PKCE S256, the ID
//! token's checks (signature by the provider's published keys, issuer, audience, nonce and
//! expiry against the server's clock) and RP-initiated logout. Requests go through the one
//! HTTP exchange of `http.rs`, over TLS for an `https://` provider; no token is kept or logged.
//!
//! TLS trusts the system's roots, or, when the tenant file names the municipality's own CA
//! (`ca_file`), only the certificates of that file: see [`OidcDirectory::new`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http_body_util::Full;
use hyper::body::Bytes;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, CsrfToken, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IdTokenFields,
    IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse as _, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::sync::Mutex;
use videoamt_core::directory::{Authorization, Directory, DirectoryError, Identity};

use crate::http::{ExchangeError, Tls, pem_roots, send, send_tls};

/// How long a discovery document and its keys are believed before they are fetched again.
pub const DISCOVERY_LIFETIME: Duration = Duration::from_secs(300);
/// One request to the provider, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from the provider.
const MAX_ANSWER: usize = 256 * 1024;

/// The claims besides the standard ones, kept as JSON so that the login and groups claims are
/// the tenant's to name. `Debug` prints only their names: they may hold a name or a mail address.
#[derive(Clone, Serialize, Deserialize)]
struct Claims {
    #[serde(flatten)]
    claims: Map<String, Value>,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.claims.keys()).finish()
    }
}

impl AdditionalClaims for Claims {}

type TokenResponse = StandardTokenResponse<
    IdTokenFields<
        Claims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type OidcClient = Client<
    Claims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// One municipality's OpenID provider.
pub struct OidcDirectory {
    issuer: String,
    client_id: String,
    client_secret: String,
    login_claim: String,
    groups_claim: String,
    scopes: Vec<String>,
    /// The municipality's own CA (PEM), if it has one.
    ca_file: Option<PathBuf>,
    /// The TLS settings for an `https://` provider, made at its first request.
    tls: OnceLock<Result<Tls, String>>,
    discovered: Mutex<Option<(Instant, Arc<ProviderMetadataWithLogout>)>>,
}

impl std::fmt::Debug for OidcDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcDirectory")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl OidcDirectory {
    /// The provider `issuer`, for the client `client_id` with its secret; the login and the
    /// groups are read from the claims so named, and `scopes` are asked for besides `openid`.
    ///
    /// Over `https://` the provider's certificate must chain to the system's roots, or, with
    /// `ca_file`, to the certificates of that PEM file *instead*: a municipality that names
    /// its own CA runs its provider under that PKI, and trusting the public CAs as well would
    /// let any of them vouch for the provider's name. Should the provider move to a publicly
    /// trusted certificate, the tenant file drops `ca_file`. The file is read at the first
    /// request (`serve` checks it at start, [`ca_certificates`]); should it be unusable then,
    /// every request fails as [`DirectoryError::Unreachable`].
    pub fn new(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        login_claim: &str,
        groups_claim: &str,
        scopes: &[String],
        ca_file: Option<&Path>,
    ) -> Self {
        Self {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            login_claim: login_claim.to_owned(),
            groups_claim: groups_claim.to_owned(),
            scopes: scopes.to_vec(),
            ca_file: ca_file.map(Path::to_path_buf),
            tls: OnceLock::new(),
            discovered: Mutex::new(None),
        }
    }

    /// The TLS settings: the municipality's CA, or the system's roots.
    fn tls(&self) -> Result<Tls, String> {
        self.tls
            .get_or_init(|| match &self.ca_file {
                Some(path) => {
                    Tls::own_ca(path).map_err(|e| format!("ca_file {}: {e}", path.display()))
                }
                None => Tls::system(),
            })
            .clone()
    }

    /// The provider's metadata and keys, from the cache while it is fresh.
    async fn metadata(&self) -> Result<Arc<ProviderMetadataWithLogout>, DirectoryError> {
        let mut cached = self.discovered.lock().await;
        if let Some((at, metadata)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_LIFETIME
        {
            return Ok(metadata.clone());
        }
        let issuer = IssuerUrl::new(self.issuer.clone())
            .map_err(|e| DirectoryError::Protocol(format!("issuer: {e}")))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http())
            .await
            .map_err(|e| match e {
                openidconnect::DiscoveryError::Request(e) => DirectoryError::Unreachable(e.0),
                other => DirectoryError::Protocol(format!("discovery: {}", chain(&other))),
            })?;
        let metadata = Arc::new(metadata);
        *cached = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    async fn client(&self, redirect_uri: &str) -> Result<OidcClient, DirectoryError> {
        let metadata = self.metadata().await?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| DirectoryError::Protocol(format!("redirect URI: {e}")))?;
        Ok(OidcClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(self.client_id.clone()),
            Some(openidconnect::ClientSecret::new(self.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// The login and groups from `claims` (an ID token's or userinfo's, as JSON).
    fn read(&self, claims: &Value) -> (Option<String>, Option<Vec<String>>) {
        let login = claims
            .get(&self.login_claim)
            .and_then(Value::as_str)
            .map(str::to_owned);
        let groups = claims.get(&self.groups_claim).map(|g| match g {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => vec![],
        });
        (login, groups)
    }
}

#[async_trait]
impl Directory for OidcDirectory {
    async fn start(&self, redirect_uri: &str) -> Result<Authorization, DirectoryError> {
        let client = self.client(redirect_uri).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    async fn finish(
        &self,
        started: &Authorization,
        code: &str,
        redirect_uri: &str,
        now: OffsetDateTime,
    ) -> Result<Identity, DirectoryError> {
        let client = self.client(redirect_uri).await?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| DirectoryError::Protocol(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(started.pkce_verifier.clone()))
            .request_async(&self.http())
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::Request(e) => DirectoryError::Unreachable(e.0),
                other => DirectoryError::Protocol(format!("token: {}", chain(&other))),
            })?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| DirectoryError::Protocol("the token answer has no ID token".into()))?;
        let at = chrono::DateTime::from_timestamp(now.unix_timestamp(), now.nanosecond())
            .ok_or_else(|| DirectoryError::Token("the server's clock is out of range".into()))?;
        let verifier = client.id_token_verifier().set_time_fn(move || at);
        let claims = id_token
            .claims(&verifier, &Nonce::new(started.nonce.clone()))
            .map_err(|e| DirectoryError::Token(chain(&e)))?;
        let from_token = serde_json::to_value(claims)
            .map_err(|e| DirectoryError::Protocol(format!("ID token claims: {e}")))?;
        let (mut login, mut groups) = self.read(&from_token);
        // Many providers put the profile and the groups only at the userinfo endpoint; its
        // answer must name the ID token's subject.
        if (login.is_none() || groups.is_none())
            && let Ok(request) = client.user_info(
                tokens.access_token().clone(),
                Some(claims.subject().clone()),
            )
        {
            let info: UserInfoClaims<Claims, CoreGenderClaim> = request
                .request_async(&self.http())
                .await
                .map_err(|e| match e {
                    openidconnect::UserInfoError::Request(e) => DirectoryError::Unreachable(e.0),
                    other => DirectoryError::Protocol(format!("userinfo: {}", chain(&other))),
                })?;
            let from_info = serde_json::to_value(&info)
                .map_err(|e| DirectoryError::Protocol(format!("userinfo claims: {e}")))?;
            let (info_login, info_groups) = self.read(&from_info);
            login = login.or(info_login);
            groups = groups.or(info_groups);
        }
        Ok(Identity {
            login,
            groups: groups.unwrap_or_default(),
        })
    }

    async fn end_session(&self, post_logout: &str) -> Result<Option<String>, DirectoryError> {
        let metadata = self.metadata().await?;
        let Some(endpoint) = metadata.additional_metadata().end_session_endpoint.clone() else {
            return Ok(None);
        };
        let back = PostLogoutRedirectUrl::new(post_logout.to_owned())
            .map_err(|e| DirectoryError::Protocol(format!("post-logout URI: {e}")))?;
        let request = openidconnect::LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(self.client_id.clone()))
            .set_post_logout_redirect_uri(back);
        Ok(Some(request.http_get_url().to_string()))
    }
}

/// An error with its sources, for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Why a request to the provider did not come back.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(String);

impl OidcDirectory {
    /// What `openidconnect` sends its requests with: [`call`] over this provider's transport.
    fn http(
        &self,
    ) -> impl Fn(
        HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<HttpResponse, Unreachable>> + Send + 'static>,
    > + use<> {
        let transport = Transport {
            tls: self.issuer.starts_with("https://").then(|| self.tls()),
        };
        move |request| Box::pin(call(request, transport.clone()))
    }
}

/// How the provider is called: over TLS when its issuer is `https://` (the tenant file allows
/// plain `http://` only for a provider on loopback). Every request goes by the issuer's
/// scheme, whatever the discovery document names: the client secret and the codes of an
/// `https://` provider go over TLS or not at all.
#[derive(Debug, Clone)]
struct Transport {
    /// `None` for a plain `http://` provider; else its TLS settings, or why there are none.
    tls: Option<Result<Tls, String>>,
}

/// One request of `openidconnect` through `http.rs`.
async fn call(request: HttpRequest, transport: Transport) -> Result<HttpResponse, Unreachable> {
    let (parts, body) = request.into_parts();
    let uri = parts.uri.clone();
    let host = uri
        .host()
        .ok_or_else(|| Unreachable(format!("{uri}: no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| host.clone());
    let (port, tls) = match (uri.scheme_str(), transport.tls) {
        (Some("https"), Some(tls)) => {
            let tls = tls.map_err(|e| Unreachable(format!("{authority}: {e}")))?;
            (uri.port_u16().unwrap_or(443), Some(tls))
        }
        (Some("http"), None) => (uri.port_u16().unwrap_or(80), None),
        (scheme, _) => {
            return Err(Unreachable(format!(
                "{authority}: the scheme {scheme:?} is not the issuer's"
            )));
        }
    };
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let mut builder = hyper::Request::builder()
        .method(parts.method)
        .uri(path)
        .header(hyper::header::HOST, authority.as_str());
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Unreachable(format!("{authority}: {e}")))?;
    let answer = match &tls {
        Some(tls) => send_tls(tls, &host, port, request, TIMEOUT, MAX_ANSWER).await,
        None => send(&host, port, request, TIMEOUT, MAX_ANSWER).await,
    }
    .map_err(|e: ExchangeError| Unreachable(format!("{authority}: {e}")))?;
    let (parts, body) = answer.into_parts();
    Ok(HttpResponse::from_parts(parts, body.to_vec()))
}

/// How many certificates the municipality's CA file `path` (`ca_file` of `[oidc]`) holds, read
/// as the sign-on reads it; the error says why it cannot be used (not found, not PEM, no
/// certificate in it), without the path.
pub fn ca_certificates(path: &Path) -> Result<usize, String> {
    pem_roots(path).map(|roots| roots.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_https_provider_is_never_called_over_plain_http() {
        let request = |url: &str| {
            hyper::Request::builder()
                .uri(url)
                .body(Vec::new())
                .expect("a request")
        };
        let https = || Transport {
            tls: Some(Err("not needed".into())),
        };
        let e = call(request("http://127.0.0.1:9/token"), https())
            .await
            .expect_err("refused");
        assert_eq!(
            e.0,
            "127.0.0.1:9: the scheme Some(\"http\") is not the issuer's"
        );
        // The TLS settings' failure (an unusable CA file) is the cause.
        let e = call(request("https://login.example/token"), https())
            .await
            .expect_err("refused");
        assert_eq!(e.0, "login.example: not needed");
        // A plain provider (on loopback) is not called over TLS.
        let plain = Transport { tls: None };
        let e = call(request("https://127.0.0.1:9/token"), plain)
            .await
            .expect_err("refused");
        assert!(e.0.contains("is not the issuer's"), "{}", e.0);
    }

    #[test]
    fn the_ca_file_is_read_at_the_first_request_and_named_in_the_cause() {
        let directory = OidcDirectory::new(
            "https://login.example",
            "videoamt",
            "s3cret",
            "preferred_username",
            "groups",
            &[],
            Some(Path::new("/gibt-es-nicht/rathaus-ca.pem")),
        );
        let e = directory.tls().expect_err("no such file");
        assert!(
            e.starts_with("ca_file /gibt-es-nicht/rathaus-ca.pem: cannot be read: "),
            "{e}"
        );
        assert!(!format!("{directory:?}").contains("s3cret"));
    }
}
