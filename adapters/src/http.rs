//! One HTTP/1.1 exchange on a fresh connection, for the adapters that call a service over
//! plain HTTP (the gateways' JSON POST in `http_post.rs`, the payment provider): hyper's client
//! connection over a tokio socket, which axum builds for the server anyway, within one timeout
//! for the whole. With the `oidc` feature also over TLS ([`send_tls`]): rustls on aws-lc-rs,
//! for a municipality's OpenID provider at an `https://` address.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;

/// Where a service is: `http://host[:port][/path]`, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `host:port` as the `Host` header names it.
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// The path the service's routes start with, without a trailing `/` (may be empty).
    pub path: String,
    /// A query the service wants on every request (some SMS gateways take their key so).
    pub query: Option<String>,
}

impl Target {
    /// `None` unless `url` is plain `http://` with a host that may be called (not a cloud
    /// metadata service: [`forbidden_host`]).
    pub(crate) fn parse(url: &str) -> Option<Self> {
        let uri: Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let host = uri.host().filter(|h| !h.is_empty())?;
        if forbidden_host(host) {
            return None;
        }
        let authority = uri.authority()?.as_str();
        // Only a host, or a host and a port number (hyper takes `host:anything`).
        let port = match uri.port_u16() {
            Some(port) if authority == format!("{host}:{port}") => port,
            None if authority == host => 80,
            _ => return None,
        };
        Some(Self {
            authority: authority.to_owned(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            path: uri.path().trim_end_matches('/').to_owned(),
            query: uri.query().map(str::to_owned),
        })
    }
}

/// Why an exchange did not come back with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExchangeError {
    /// No connection (refused, unreachable, the handshake failed).
    Connect(String),
    /// The request could not be built from what was given.
    Request(String),
    /// The connection broke before or while the answer came, or it was too large.
    Answer(String),
    /// No answer within the timeout.
    Timeout,
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connection: {e}"),
            Self::Request(e) => write!(f, "request: {e}"),
            Self::Answer(e) => write!(f, "answer: {e}"),
            Self::Timeout => f.write_str("no answer in time"),
        }
    }
}

/// `method` on `target`'s path followed by `path` (and its query), with `headers` and a JSON
/// `body`: the answer's status and body (at most `max_answer` bytes), all within `timeout`.
pub(crate) async fn exchange(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
    max_answer: usize,
) -> Result<(StatusCode, Bytes), ExchangeError> {
    let mut full = format!("{}{path}", target.path);
    if full.is_empty() {
        full.push('/');
    }
    if let Some(query) = &target.query {
        full = format!("{full}?{query}");
    }
    let mut request = Request::builder()
        .method(method)
        .uri(full)
        .header(header::HOST, &target.authority)
        .header(header::ACCEPT, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| ExchangeError::Request(e.to_string()))?;
    let response = send(&target.host, target.port, request, timeout, max_answer).await?;
    Ok((response.status(), response.into_body()))
}

/// Sends `request` (its URI the path and query, its `Host` header set) to `host:port` on a
/// fresh connection and reads the answer, at most `max_answer` bytes, all within `timeout`.
pub(crate) async fn send(
    host: &str,
    port: u16,
    request: Request<Full<Bytes>>,
    timeout: Duration,
    max_answer: usize,
) -> Result<hyper::Response<Bytes>, ExchangeError> {
    let exchange = async {
        let stream = connect(host, port).await?;
        over(stream, request, max_answer).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ExchangeError::Timeout)?
}

/// [`send`] over TLS: the server at `host:port` must show a certificate for `host` that chains
/// to one of `tls`'s roots. The handshake counts towards `timeout`; a certificate that is not
/// trusted, or not for `host`, is [`ExchangeError::Connect`] with the cause.
#[cfg(feature = "oidc")]
pub(crate) async fn send_tls(
    tls: &Tls,
    host: &str,
    port: u16,
    request: Request<Full<Bytes>>,
    timeout: Duration,
    max_answer: usize,
) -> Result<hyper::Response<Bytes>, ExchangeError> {
    let exchange = async {
        let name = tls::server_name(host)?;
        let stream = connect(host, port).await?;
        let stream = tls
            .0
            .connect(name, stream)
            .await
            .map_err(|e| ExchangeError::Connect(tls::cause(&e)))?;
        over(stream, request, max_answer).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ExchangeError::Timeout)?
}

/// The answer when every address of a host is one no service of ours lives at.
pub(crate) const NOT_ALLOWED: &str = "address not allowed (link-local or metadata service)";

/// Whether `host` (a name, or an address with or without brackets) names a cloud metadata
/// service or another address no configured service lives at ([`forbidden_ip`]). The URLs of
/// the gateways, the case system, the payment provider and the directory are configuration,
/// and the directory's own discovery document names further URLs: none of them may turn the
/// server into a client of the host's metadata service, which hands out credentials to
/// whoever asks from the machine (SSRF).
pub(crate) fn forbidden_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return forbidden_ip(ip);
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    // The names the clouds give their metadata services (GCP, Azure's wire server alias).
    matches!(
        name.as_str(),
        "metadata" | "metadata.google.internal" | "metadata.goog" | "instance-data"
    ) || name.ends_with(".metadata.google.internal")
}

/// Link-local (169.254.0.0/16 with the AWS, GCP, Azure and OpenStack metadata services at
/// 169.254.169.254, fe80::/10), the metadata addresses outside it (Alibaba's 100.100.100.200,
/// AWS's fd00:ec2::254), and addresses nothing listens at (unspecified, broadcast,
/// multicast), also in IPv4-mapped form. Loopback and private ranges stay allowed: the
/// gateways sit on the internal network, the sandboxes on loopback.
pub(crate) fn forbidden_ip(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_ip(IpAddr::V4(v4));
            }
            v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// Connects to the first address of `host` that answers, among those it resolves to that are
/// not [`forbidden_ip`]: a name that resolves to a metadata address (DNS rebinding included,
/// since the checked address is the one connected to) is refused like a literal one.
async fn connect(host: &str, port: u16) -> Result<tokio::net::TcpStream, ExchangeError> {
    if forbidden_host(host) {
        return Err(ExchangeError::Connect(NOT_ALLOWED.into()));
    }
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ExchangeError::Connect(e.kind().to_string()))?
        .collect();
    let allowed = allowed_addresses(&resolved);
    if allowed.is_empty() {
        return Err(ExchangeError::Connect(if resolved.is_empty() {
            "the name has no address".into()
        } else {
            NOT_ALLOWED.into()
        }));
    }
    tokio::net::TcpStream::connect(allowed.as_slice())
        .await
        .map_err(|e| ExchangeError::Connect(e.kind().to_string()))
}

/// The addresses of `resolved` a connection may go to.
fn allowed_addresses(resolved: &[std::net::SocketAddr]) -> Vec<std::net::SocketAddr> {
    resolved
        .iter()
        .copied()
        .filter(|a| !forbidden_ip(a.ip()))
        .collect()
}

/// One request and its answer on `stream`, plain or TLS.
async fn over<S>(
    stream: S,
    request: Request<Full<Bytes>>,
    max_answer: usize,
) -> Result<hyper::Response<Bytes>, ExchangeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ExchangeError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| ExchangeError::Answer(e.to_string()))?;
    let (parts, body) = response.into_parts();
    let bytes = Limited::new(body, max_answer)
        .collect()
        .await
        .map_err(|e| ExchangeError::Answer(e.to_string()))?
        .to_bytes();
    Ok(hyper::Response::from_parts(parts, bytes))
}

#[cfg(feature = "oidc")]
pub(crate) use tls::{Tls, pem_roots};

/// The client side of TLS: which certificates a server's must chain to.
#[cfg(feature = "oidc")]
mod tls {
    use std::path::Path;
    use std::sync::{Arc, OnceLock};

    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{self, CertificateError, ClientConfig, RootCertStore};

    use super::ExchangeError;

    /// TLS 1.2 and 1.3 with aws-lc-rs's safe defaults, the server checked against a set of
    /// roots (no client certificate). Cheap to clone.
    #[derive(Clone)]
    pub(crate) struct Tls(pub(super) TlsConnector);

    impl std::fmt::Debug for Tls {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Tls").finish_non_exhaustive()
        }
    }

    impl Tls {
        /// The system's roots (rustls-native-certs: `SSL_CERT_FILE`, `SSL_CERT_DIR`, else the
        /// distribution's bundle), read once per process. Certificates of the store that do
        /// not parse are left out; with none at all, every server is of an unknown issuer.
        pub(crate) fn system() -> Result<Self, String> {
            static SYSTEM: OnceLock<Result<Tls, String>> = OnceLock::new();
            SYSTEM
                .get_or_init(|| {
                    let found = rustls_native_certs::load_native_certs();
                    if found.certs.is_empty() && !found.errors.is_empty() {
                        tracing::warn!(
                            errors = found.errors.len(),
                            "no system root certificates could be read"
                        );
                    }
                    let mut roots = RootCertStore::empty();
                    roots.add_parsable_certificates(found.certs);
                    Self::with_roots(roots)
                })
                .clone()
        }

        /// Only the certificates of the PEM file `path` as roots ([`pem_roots`]).
        pub(crate) fn own_ca(path: &Path) -> Result<Self, String> {
            Self::with_roots(pem_roots(path)?)
        }

        fn with_roots(roots: RootCertStore) -> Result<Self, String> {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS settings: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Self(TlsConnector::from(Arc::new(config))))
        }
    }

    /// The certificates of the PEM file `path` as roots. Every certificate in it must parse as
    /// a trust anchor (other PEM sections, a key say, are passed over); a file without any is
    /// refused.
    pub(crate) fn pem_roots(path: &Path) -> Result<RootCertStore, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
        roots_of(&pem)
    }

    fn roots_of(pem: &[u8]) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        for (n, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let cert = cert.map_err(|e| format!("is not PEM: {e}"))?;
            roots.add(cert).map_err(|e| {
                format!(
                    "holds certificate number {}, which cannot be used: {e}",
                    n + 1
                )
            })?;
        }
        if roots.is_empty() {
            return Err("holds no certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        Ok(roots)
    }

    /// The name the server's certificate must be for: a DNS name or an IP address.
    pub(super) fn server_name(host: &str) -> Result<ServerName<'static>, ExchangeError> {
        ServerName::try_from(host.to_owned())
            .map_err(|_| ExchangeError::Connect(format!("TLS: {host:?} is no server name")))
    }

    /// A failed handshake, shortly: what was wrong with the certificate, or rustls's word.
    pub(super) fn cause(e: &std::io::Error) -> String {
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
            return format!("TLS: {}", e.kind());
        };
        let why = match tls {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => "the certificate's issuer is not trusted",
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "the certificate is not for this host"
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the certificate has expired"
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the certificate is not valid yet"
                }
                CertificateError::Revoked => "the certificate is revoked",
                CertificateError::BadSignature => "the certificate's signature is wrong",
                other => return format!("TLS: bad certificate: {other:?}"),
            },
            other => return format!("TLS: {other}"),
        };
        format!("TLS: {why}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_plain_http_with_a_path() {
        assert_eq!(
            Target::parse("http://127.0.0.1:8080/sandbox/zahlung/"),
            Some(Target {
                authority: "127.0.0.1:8080".into(),
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/sandbox/zahlung".into(),
                query: None,
            })
        );
        let keyed = Target::parse("http://sms.example/send?key=k1").expect("valid");
        assert_eq!(
            (keyed.path.as_str(), keyed.query.as_deref()),
            ("/send", Some("key=k1"))
        );
        let bare = Target::parse("http://sms.example").expect("valid");
        assert_eq!((bare.port, bare.path.as_str()), (80, ""));
        let v6 = Target::parse("http://[::1]:9000/x").expect("valid");
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.authority.as_str()),
            ("::1", 9000, "[::1]:9000")
        );
        for bad in [
            "https://epaybl.example/pay",
            "sms.example",
            "http://",
            "http://host:port",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn metadata_services_and_link_local_addresses_are_no_target() {
        for bad in [
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://169.254.170.2/v2/credentials",
            "http://100.100.100.200/latest/meta-data",
            "http://[fd00:ec2::254]/latest/meta-data",
            "http://[fe80::1]:8080/",
            "http://[::ffff:169.254.169.254]/",
            "http://0.0.0.0:80/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./computeMetadata/v1/",
            "http://metadata/",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
        // The sandboxes on loopback and gateways on the internal network stay reachable.
        for good in [
            "http://127.0.0.1:9000/sms",
            "http://[::1]:9000/",
            "http://10.1.2.3/akte",
            "http://192.168.0.10:8080/",
            "http://sms.intern.example/",
        ] {
            assert!(Target::parse(good).is_some(), "{good}");
        }
        // A name that resolves to a metadata address is left with nothing to connect to.
        let resolved: Vec<std::net::SocketAddr> = ["169.254.169.254:80", "[fe80::1]:80"]
            .iter()
            .map(|a| a.parse().expect("address"))
            .collect();
        assert!(allowed_addresses(&resolved).is_empty());
        let mixed: Vec<std::net::SocketAddr> = ["169.254.169.254:80", "10.0.0.5:80"]
            .iter()
            .map(|a| a.parse().expect("address"))
            .collect();
        assert_eq!(allowed_addresses(&mixed), vec![mixed[1]]);
    }

    #[tokio::test]
    async fn a_metadata_address_is_refused_before_any_packet() {
        // Whatever listens there (nothing here), the exchange does not try.
        let target = Target {
            authority: "169.254.169.254".into(),
            host: "169.254.169.254".into(),
            port: 80,
            path: String::new(),
            query: None,
        };
        let answer = exchange(
            &target,
            Method::GET,
            "/latest/meta-data",
            &[],
            None,
            Duration::from_secs(5),
            1024,
        );
        assert_eq!(
            answer.await,
            Err(ExchangeError::Connect(NOT_ALLOWED.into()))
        );
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connection_error_and_silence_a_timeout() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a port");
        let target = Target::parse(&format!("http://{closed}")).expect("valid");
        let answer = exchange(
            &target,
            Method::GET,
            "/",
            &[],
            None,
            Duration::from_secs(5),
            1024,
        );
        assert!(matches!(answer.await, Err(ExchangeError::Connect(_))));
        // A listener that never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let target = Target::parse(&format!("http://{}", silent.local_addr().expect("bound")))
            .expect("valid");
        let answer = exchange(
            &target,
            Method::GET,
            "/",
            &[],
            None,
            Duration::from_millis(200),
            1024,
        );
        assert_eq!(answer.await, Err(ExchangeError::Timeout));
    }

    /// A test PKI made with the `openssl` command line: a CA, and certificates it signs.
    #[cfg(feature = "oidc")]
    struct TestPki {
        dir: tempfile::TempDir,
    }

    #[cfg(feature = "oidc")]
    impl TestPki {
        /// `openssl` with `args` (split at spaces) in the PKI's folder.
        fn openssl(&self, args: &str) {
            let out = std::process::Command::new("openssl")
                .current_dir(self.dir.path())
                .args(args.split_whitespace())
                .output()
                .expect("the openssl command line");
            assert!(
                out.status.success(),
                "openssl {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        fn new() -> Self {
            let pki = Self {
                dir: tempfile::tempdir().expect("temp dir"),
            };
            pki.openssl(
                "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
                 -out ca.pem -days 2 -subj /CN=Test-CA-Rathaus \
                 -addext basicConstraints=critical,CA:TRUE \
                 -addext keyUsage=critical,keyCertSign,cRLSign",
            );
            pki
        }

        fn ca(&self) -> std::path::PathBuf {
            self.dir.path().join("ca.pem")
        }

        /// A server certificate for the DNS name `name` and its key, as PEM files; `serial`
        /// tells it from the PKI's others.
        fn leaf(&self, name: &str, serial: u32) -> (std::path::PathBuf, std::path::PathBuf) {
            std::fs::write(
                self.dir.path().join(format!("{name}.ext")),
                format!(
                    "subjectAltName=DNS:{name}\nbasicConstraints=critical,CA:FALSE\n\
                     keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                ),
            )
            .expect("written");
            self.openssl(&format!(
                "req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {name}.key \
                 -out {name}.csr -subj /CN={name}"
            ));
            self.openssl(&format!(
                "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -set_serial {serial} -days 2 \
                 -extfile {name}.ext -out {name}.pem"
            ));
            let file = |ext: &str| self.dir.path().join(format!("{name}.{ext}"));
            (file("pem"), file("key"))
        }
    }

    /// A TLS server on 127.0.0.1 showing `cert` that answers every request with `ok`: its port.
    #[cfg(feature = "oidc")]
    async fn tls_server((cert, key): (std::path::PathBuf, std::path::PathBuf)) -> u16 {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject as _;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let chain = CertificateDer::pem_file_iter(&cert)
            .expect("the certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        let key = PrivateKeyDer::from_pem_file(&key).expect("the key");
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("a server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let port = listener.local_addr().expect("bound").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake.
                    let Ok(mut stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        port
    }

    #[cfg(feature = "oidc")]
    async fn get_tls(tls: &Tls, host: &str, port: u16) -> Result<String, ExchangeError> {
        let request = Request::builder()
            .uri("/")
            .header(header::HOST, format!("{host}:{port}"))
            .body(Full::new(Bytes::new()))
            .expect("a request");
        let answer = send_tls(tls, host, port, request, Duration::from_secs(5), 1024).await?;
        assert_eq!(answer.status(), StatusCode::OK);
        Ok(String::from_utf8_lossy(answer.body()).into_owned())
    }

    #[cfg(feature = "oidc")]
    #[tokio::test]
    async fn over_tls_the_certificate_must_chain_to_the_roots_and_name_the_host() {
        let pki = TestPki::new();
        let port = tls_server(pki.leaf("localhost", 2)).await;
        let own_ca = Tls::own_ca(&pki.ca()).expect("the CA file");
        assert_eq!(get_tls(&own_ca, "localhost", port).await, Ok("ok".into()));
        // The system's roots do not know the test CA.
        let system = Tls::system().expect("the system's roots");
        assert_eq!(
            get_tls(&system, "localhost", port).await,
            Err(ExchangeError::Connect(
                "TLS: the certificate's issuer is not trusted".into()
            ))
        );
        // A certificate of the right CA, but for another name.
        let elsewhere = tls_server(pki.leaf("anderswo.example", 3)).await;
        assert_eq!(
            get_tls(&own_ca, "localhost", elsewhere).await,
            Err(ExchangeError::Connect(
                "TLS: the certificate is not for this host".into()
            ))
        );
        // The name is the host's, an address included.
        assert_eq!(
            get_tls(&own_ca, "127.0.0.1", port).await,
            Err(ExchangeError::Connect(
                "TLS: the certificate is not for this host".into()
            ))
        );
        // Plain http to a TLS server, and TLS to nobody, are no panic either.
        let plain = Request::builder()
            .uri("/")
            .header(header::HOST, "localhost")
            .body(Full::new(Bytes::new()))
            .expect("a request");
        assert!(
            send("localhost", port, plain, Duration::from_secs(5), 1024)
                .await
                .is_err()
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a port")
            .port();
        assert!(matches!(
            get_tls(&own_ca, "127.0.0.1", closed).await,
            Err(ExchangeError::Connect(_))
        ));
    }

    #[cfg(feature = "oidc")]
    #[test]
    fn a_ca_file_must_hold_certificates() {
        let pki = TestPki::new();
        assert_eq!(pem_roots(&pki.ca()).map(|r| r.len()), Ok(1));
        // A bundle: every certificate in it counts, other sections are passed over.
        let (leaf, key) = pki.leaf("localhost", 2);
        let bundle = pki.dir.path().join("bundle.pem");
        let text = [&pki.ca(), &key, &leaf]
            .map(|p| std::fs::read_to_string(p).expect("PEM"))
            .concat();
        std::fs::write(&bundle, text).expect("written");
        assert_eq!(pem_roots(&bundle).map(|r| r.len()), Ok(2));
        let missing = pki.dir.path().join("gibt-es-nicht.pem");
        let e = pem_roots(&missing).expect_err("missing");
        assert!(e.starts_with("cannot be read: "), "{e}");
        let e = pem_roots(&key).expect_err("only a key");
        assert!(e.starts_with("holds no certificate"), "{e}");
        let text = pki.dir.path().join("text.pem");
        std::fs::write(&text, "kein Zertifikat\n").expect("written");
        assert!(
            pem_roots(&text)
                .expect_err("text")
                .starts_with("holds no certificate")
        );
        assert!(Tls::own_ca(&text).is_err());
    }
}
