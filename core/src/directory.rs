//! Staff sign-on through a municipality's directory: an OpenID Connect provider (Keycloak,
//! ADFS, …) in front of its Active Directory. The tenant file's `[oidc]` section names the
//! provider and says which directory groups grant which role ([`DirectorySignOn::grant`]);
//! nobody gets a role the mapping does not grant.
//!
//! The port [`Directory`] is the authorization code flow with PKCE, seen from the server: where
//! to send the browser ([`Directory::start`]), what the provider vouches for when the browser
//! comes back ([`Directory::finish`]: the ID token checked, its nonce and expiry included), and
//! where to end the provider's session ([`Directory::end_session`]). `videoamt-adapters`
//! implements it (feature `oidc`).

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::account::StaffRole;
use crate::tenant::DepartmentId;

/// A tenant's directory sign-on, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySignOn {
    /// The provider's issuer URL, as its ID tokens name it (discovery is below it).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: ClientSecret,
    /// The sign-on button's text on the login page.
    pub label: String,
    /// The claim that carries the login name (lowercased before it is checked).
    pub login_claim: String,
    /// The claim that carries the directory groups, a list of strings.
    pub groups_claim: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The mapping from groups to roles, in the file's order.
    pub grants: Vec<RoleGrant>,
    /// The municipality's own CA, a PEM file (absolute path, as given): an `https://`
    /// provider's certificate must chain to its certificates instead of the system's roots.
    /// Only the path is kept here; `serve` reads it.
    pub ca_file: Option<String>,
}

/// One line of the mapping: members of `group` get `role` (and a clerk `departments`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    pub group: String,
    pub role: StaffRole,
    pub departments: Vec<DepartmentId>,
}

/// Where the client secret comes from. The tenant file may hold it, or name the environment
/// variable that does; `Debug` never prints a value.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientSecret {
    Value(String),
    Env(String),
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(_) => f.write_str("ClientSecret(‹redacted›)"),
            Self::Env(name) => write!(f, "ClientSecret(env {name})"),
        }
    }
}

impl DirectorySignOn {
    /// The role and departments `groups` grant: the first line of the mapping whose group the
    /// person is in names the role; a clerk works for the departments of every line with that
    /// role whose group they are in. `None` when no line matches.
    pub fn grant(&self, groups: &[String]) -> Option<(StaffRole, Vec<DepartmentId>)> {
        let member = |g: &RoleGrant| groups.contains(&g.group);
        let role = self.grants.iter().find(|g| member(g))?.role;
        let mut departments: Vec<DepartmentId> = self
            .grants
            .iter()
            .filter(|g| g.role == role && member(g))
            .flat_map(|g| g.departments.iter().cloned())
            .collect();
        departments.sort();
        departments.dedup();
        Some((role, departments))
    }
}

/// What the browser is sent to the provider with, and what the server keeps until it comes
/// back: the `state` it must return, the `nonce` the ID token must carry and the PKCE
/// verifier. `Debug` prints none of them.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorization(‹redacted›)")
    }
}

/// What the provider vouches for after a checked ID token: the login claim as given (not yet
/// checked as a [`crate::domain::account::Login`]) and the groups. Nothing else is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub login: Option<String>,
    pub groups: Vec<String>,
}

/// Why a sign-on did not come through. The texts are for the log: they never carry a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The provider could not be reached, or answered with an error page.
    #[error("the identity provider is unreachable: {0}")]
    Unreachable(String),
    /// The provider answered, but not as OpenID Connect says (bad discovery document, no
    /// ID token, a token endpoint error such as a used code).
    #[error("the identity provider answered unexpectedly: {0}")]
    Protocol(String),
    /// The ID token failed a check: signature, issuer, audience, nonce or expiry.
    #[error("the ID token was refused: {0}")]
    Token(String),
}

/// A municipality's OpenID provider, as the sign-on pages use it.
#[async_trait]
pub trait Directory: Send + Sync + fmt::Debug {
    /// Starts a sign-on: the provider's authorization URL (code flow, PKCE S256, a fresh
    /// state and nonce) for a browser that comes back to `redirect_uri`.
    async fn start(&self, redirect_uri: &str) -> Result<Authorization, DirectoryError>;

    /// Redeems `code` for the tokens of the sign-on `started`, checks the ID token against
    /// its nonce with `now` as the time, and reads the login and groups from it (and from the
    /// userinfo endpoint, where the token lacks them).
    async fn finish(
        &self,
        started: &Authorization,
        code: &str,
        redirect_uri: &str,
        now: OffsetDateTime,
    ) -> Result<Identity, DirectoryError>;

    /// The provider's end-session URL that brings the browser back to `post_logout`, when the
    /// provider offers RP-initiated logout.
    async fn end_session(&self, post_logout: &str) -> Result<Option<String>, DirectoryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign_on(grants: Vec<RoleGrant>) -> DirectorySignOn {
        DirectorySignOn {
            issuer: "http://127.0.0.1:4011".into(),
            client_id: "videoamt".into(),
            client_secret: ClientSecret::Value("s3cret".into()),
            label: "Mit dem Dienstkonto anmelden".into(),
            login_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            scopes: vec!["profile".into()],
            grants,
            ca_file: None,
        }
    }

    fn line(group: &str, role: StaffRole, departments: &[&str]) -> RoleGrant {
        RoleGrant {
            group: group.into(),
            role,
            departments: departments.iter().map(|d| DepartmentId::from(*d)).collect(),
        }
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|g| (*g).to_owned()).collect()
    }

    #[test]
    fn the_first_matching_line_names_the_role_and_a_clerk_gets_every_matching_department() {
        let s = sign_on(vec![
            line("va-admin", StaffRole::Admin, &[]),
            line("va-bb", StaffRole::Clerk, &["buergerbuero"]),
            line("va-kfz", StaffRole::Clerk, &["kfz"]),
            line("va-pruef", StaffRole::Auditor, &[]),
        ]);
        assert_eq!(
            s.grant(&groups(&["va-kfz", "va-bb", "va-pruef"])),
            Some((
                StaffRole::Clerk,
                vec![
                    DepartmentId::from("buergerbuero"),
                    DepartmentId::from("kfz")
                ]
            ))
        );
        assert_eq!(
            s.grant(&groups(&["va-pruef", "va-admin"])),
            Some((StaffRole::Admin, vec![]))
        );
        assert_eq!(
            s.grant(&groups(&["va-pruef"])),
            Some((StaffRole::Auditor, vec![]))
        );
    }

    #[test]
    fn nobody_gets_a_role_the_mapping_does_not_grant() {
        let s = sign_on(vec![line("va-bb", StaffRole::Clerk, &["buergerbuero"])]);
        assert_eq!(s.grant(&groups(&[])), None);
        assert_eq!(s.grant(&groups(&["Domain Users", "VA-BB", "va-b"])), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let shown = format!("{:?}", sign_on(vec![]));
        assert!(!shown.contains("s3cret"), "{shown}");
        let started = Authorization {
            url: "http://idp/auth?state=st4te".into(),
            state: "st4te".into(),
            nonce: "n0nce".into(),
            pkce_verifier: "v3rifier".into(),
        };
        assert_eq!(format!("{started:?}"), "Authorization(‹redacted›)");
    }
}
