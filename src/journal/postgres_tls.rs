//! TLS to PostgreSQL: libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, over rustls.
//!
//! tokio-postgres reads `sslmode` as `disable`, `prefer` or `require` and leaves certificates to
//! the TLS connector; it refuses the other settings. So a journal URL keeps libpq's meaning:
//! the settings tokio-postgres does not read are taken out here, and the connector verifies what
//! libpq would verify.
//!
//! | sslmode | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked; checked as `verify-ca` when `sslrootcert` is given |
//! | `verify-ca` | always | signed by a trusted authority |
//! | `verify-full` | always | signed by a trusted authority, for the host connected to |
//!
//! Trusted authorities are the `sslrootcert` file's (PEM), or the system's trust store when it
//! is not given or is `system`.

use super::JournalError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

/// How much of TLS a journal URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, no certificate check (libpq's default).
    Prefer,
    /// TLS or no connection, no certificate check.
    Require,
    /// TLS, the certificate chain checked.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

/// The TLS settings of a journal URL.
#[derive(Debug, PartialEq, Eq)]
pub struct Tls {
    /// What the URL's `sslmode` asks for (`Prefer` when it says nothing).
    pub mode: Mode,
    /// `sslrootcert`: a PEM file of trusted authorities (`None` for the system's).
    pub root_cert: Option<PathBuf>,
    /// `sslcert` and `sslkey`: a client certificate and its key, both PEM.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Splits a `postgres://` URL into what tokio-postgres reads and the TLS settings it does not:
/// `sslrootcert`, `sslcert` and `sslkey` are taken out, and `sslmode` is given to it as one of
/// the three modes it knows.
pub fn split(url: &str) -> Result<(String, Tls), JournalError> {
    let mut tls = Tls {
        mode: Mode::Prefer,
        root_cert: None,
        client: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), tls));
    };
    let (mut cert, mut key, mut mode_given) = (None, None, false);
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        // Decoded as tokio-postgres decodes them: `ssl%6Dode` is `sslmode` to it too.
        let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        match name.as_ref() {
            "sslmode" => {
                mode_given = true;
                tls.mode = match value.as_ref() {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(JournalError::Url(format!(
                            "`sslmode={other}` in `--journal` is not a mode PostgreSQL knows: write disable, allow, prefer, require, verify-ca or verify-full"
                        )));
                    }
                }
            }
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(value.as_ref())),
            "sslcert" => cert = Some(PathBuf::from(value.as_ref())),
            "sslkey" => key = Some(PathBuf::from(value.as_ref())),
            _ => kept.push(pair),
        }
    }
    tls.client = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(JournalError::Url(
                "`--journal` gives one of `sslcert` and `sslkey` without the other: a client certificate needs both".into(),
            ));
        }
    };
    if tls.root_cert.as_deref() == Some(std::path::Path::new("system")) {
        tls.root_cert = None;
        // libpq: trusting the system's authorities means checking the host name, and any
        // weaker mode with it is refused (it would check less than it seems to).
        match (mode_given, tls.mode) {
            (false, _) | (true, Mode::VerifyFull) => tls.mode = Mode::VerifyFull,
            _ => {
                return Err(JournalError::Url(
                    "`sslrootcert=system` in `--journal` needs `sslmode=verify-full` (or no sslmode)".into(),
                ));
            }
        }
    }
    if tls.mode == Mode::Require && tls.root_cert.is_some() {
        // libpq: `require` with a root certificate given checks the chain.
        tls.mode = Mode::VerifyCa;
    }
    let told = match tls.mode {
        Mode::Disable => "disable",
        Mode::Prefer => "prefer",
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "require",
    };
    kept.push(match told {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok((format!("{base}?{}", kept.join("&")), tls))
}

/// The connector for `tls`: rustls with aws-lc-rs (as every other connection flowrun makes),
/// checking the server's certificate as far as the mode asks.
pub fn connector(tls: &Tls) -> Result<tokio_postgres_rustls::MakeRustlsConnect, JournalError> {
    let setup = |e: rustls::Error| JournalError::Store(format!("PostgreSQL TLS setup: {e}"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain: Option<Arc<dyn ServerCertVerifier>> = match tls.mode {
        Mode::Disable | Mode::Prefer | Mode::Require => None,
        Mode::VerifyCa | Mode::VerifyFull => Some(match &tls.root_cert {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_pem_certs(path, "sslrootcert")? {
                    roots.add(cert).map_err(|e| {
                        JournalError::Url(format!(
                            "`sslrootcert` {}: not a certificate rustls can use: {e}",
                            path.display()
                        ))
                    })?;
                }
                rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| JournalError::Store(format!("PostgreSQL TLS setup: {e}")))?
            }
            None => Arc::new(rustls_platform_verifier::Verifier::new(provider.clone()).map_err(setup)?),
        }),
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (tls.mode, chain) {
        (Mode::VerifyFull, Some(chain)) => chain,
        (_, Some(chain)) => Arc::new(AnyHostName(chain)),
        (_, None) => Arc::new(AnyCertificate(provider.clone())),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &tls.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = read_pem_certs(cert, "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                JournalError::Url(format!("`sslkey` {}: cannot read a PEM key: {e}", key.display()))
            })?;
            builder.with_client_auth_cert(certs, key).map_err(setup)?
        }
    };
    // PostgreSQL 17 asks for its ALPN name on a direct TLS connection; older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn read_pem_certs(
    path: &std::path::Path,
    setting: &str,
) -> Result<Vec<CertificateDer<'static>>, JournalError> {
    let unreadable = |e: rustls::pki_types::pem::Error| {
        JournalError::Url(format!(
            "`{setting}` {}: cannot read PEM certificates: {e}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if certs.is_empty() {
        return Err(JournalError::Url(format!(
            "`{setting}` {}: holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// `verify-ca`: the chain must lead to a trusted authority; the name in the certificate is not
/// compared with the host (a server reached by an address its certificate does not name).
#[derive(Debug)]
struct AnyHostName(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name last, after the chain: a name error means the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require`: the traffic is encrypted, the server's certificate is taken as it
/// comes (libpq's meaning of these modes). The handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(url: &str) -> (String, Mode) {
        let (rest, tls) = split(url).unwrap();
        (rest, tls.mode)
    }

    #[test]
    fn tokio_postgres_is_told_only_the_modes_it_knows() {
        assert_eq!(
            modes("postgres://u@h/db"),
            ("postgres://u@h/db".into(), Mode::Prefer)
        );
        assert_eq!(
            modes("postgres://u@h/db?connect_timeout=5&sslmode=verify-full&sslrootcert=/ca.pem"),
            (
                "postgres://u@h/db?connect_timeout=5&sslmode=require".into(),
                Mode::VerifyFull
            )
        );
        assert_eq!(modes("postgres://u@h/db?sslmode=allow").1, Mode::Prefer);
        assert_eq!(
            modes("postgres://u@h/db?sslmode=disable"),
            ("postgres://u@h/db?sslmode=disable".into(), Mode::Disable)
        );
    }

    #[test]
    fn require_with_a_root_certificate_checks_the_chain_as_libpq_does() {
        let (_, tls) = split("postgres://u@h/db?sslmode=require&sslrootcert=%2Fetc%2Fca.pem").unwrap();
        assert_eq!(tls.mode, Mode::VerifyCa);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (_, tls) = split("postgres://u@h/db?sslrootcert=system").unwrap();
        assert_eq!((tls.mode, tls.root_cert), (Mode::VerifyFull, None));
        for weaker in ["require", "prefer", "verify-ca"] {
            let url = format!("postgres://u@h/db?sslmode={weaker}&sslrootcert=system");
            let e = split(&url).unwrap_err().to_string();
            assert!(e.contains("needs `sslmode=verify-full`"), "{e}");
        }
        // A key written percent-encoded is the same key.
        let (rest, tls) = split("postgres://u@h/db?ssl%6Dode=verify-full").unwrap();
        assert_eq!(
            (rest.as_str(), tls.mode),
            ("postgres://u@h/db?sslmode=require", Mode::VerifyFull)
        );
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_write() {
        let e = split("postgres://u@h/db?sslmode=verify").unwrap_err().to_string();
        assert!(e.contains("`sslmode=verify` in `--journal` is not a mode PostgreSQL knows: write disable, allow, prefer, require, verify-ca or verify-full"), "{e}");
        let e = split("postgres://u@h/db?sslcert=c.pem").unwrap_err().to_string();
        assert!(e.contains("needs both"), "{e}");
        let tls = split("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nowhere/ca.pem")
            .unwrap()
            .1;
        let e = connector(&tls).err().unwrap().to_string();
        assert!(
            e.contains("`sslrootcert` /nowhere/ca.pem: cannot read PEM certificates"),
            "{e}"
        );
    }
}
