//! Whether a `serve` is for trying the product on one machine, or reachable by others: what
//! only the former may have (the published demo password, `/dev/outbox`) is decided here, from
//! the listen address and the public URL (ADR 0026).

use std::net::IpAddr;

/// Who can reach a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exposure {
    /// Only this machine: the listener is on loopback and the public URL, if any, names a
    /// loopback host over plain HTTP.
    Local,
    /// Others may: why, in a few words for the operator.
    Reachable(String),
}

impl Exposure {
    /// A server listening on `listen` whose links point to `public_url` (when set).
    pub(crate) fn of(listen: IpAddr, public_url: Option<&str>) -> Self {
        if !listen.is_loopback() {
            return Self::Reachable(format!("the listener {listen} is not on loopback"));
        }
        let Some(url) = public_url.filter(|u| !u.is_empty()) else {
            return Self::Local;
        };
        // Behind a TLS proxy the listener is on loopback and the world reaches it anyway.
        if url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
            return Self::Reachable("the public URL is https".to_owned());
        }
        let host = url
            .parse::<axum::http::Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned));
        match host {
            Some(host) if loopback_host(&host) => Self::Local,
            _ => Self::Reachable("the public URL names a host other than loopback".to_owned()),
        }
    }
}

/// `localhost` (and its subdomains) or a loopback address, IPv6 with or without brackets.
fn loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::Exposure;
    use std::net::IpAddr;

    fn of(listen: &str, url: Option<&str>) -> Exposure {
        Exposure::of(listen.parse::<IpAddr>().expect("an address"), url)
    }

    #[test]
    fn only_a_loopback_listener_with_a_loopback_http_url_is_local() {
        for (listen, url) in [
            ("127.0.0.1", None),
            ("::1", None),
            ("127.0.0.1", Some("")),
            ("127.0.0.1", Some("http://127.0.0.1:8080")),
            ("127.0.0.1", Some("http://localhost:8080/")),
            ("::1", Some("http://[::1]:8080")),
        ] {
            assert_eq!(of(listen, url), Exposure::Local, "{listen} {url:?}");
        }
        for (listen, url) in [
            ("0.0.0.0", None),
            ("::", None),
            ("192.168.1.20", None),
            ("0.0.0.0", Some("http://localhost:8080")),
            ("127.0.0.1", Some("https://amt.example")),
            ("127.0.0.1", Some("HTTPS://localhost")),
            ("127.0.0.1", Some("http://amt.example")),
            ("127.0.0.1", Some("http://localhost.amt.example")),
            ("127.0.0.1", Some("kein url")),
        ] {
            assert!(
                matches!(of(listen, url), Exposure::Reachable(_)),
                "{listen} {url:?}"
            );
        }
    }
}
