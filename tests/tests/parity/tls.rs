//! TLS as the URL's `sslmode` says (Postgres only).
//!
//! `verify-full` is checked against a TLS front this test runs for the local server: it
//! answers Postgres's SSLRequest, terminates TLS with a certificate for `localhost` issued
//! by a CA made here, and forwards to the server. So the test needs no server
//! configuration, and it runs wherever the rest of the suite runs.

use std::sync::Arc;

use dal::DalError;
use dal::prelude::*;
use parity_tests::{Setup, TestDb};
use sea_orm::{ConnectionTrait, Statement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    ca_pem: String,
    server: rustls::ServerConfig,
}

/// A CA and a server certificate it issued for `localhost`.
fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "dal test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server,
    }
}

/// Listens on a free port; for each client, expects Postgres's SSLRequest, says yes, does
/// the TLS handshake and relays the decrypted stream to `upstream`.
async fn tls_front(upstream: String, server: rustls::ServerConfig) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
                let mut request = [0u8; 8];
                if client.read_exact(&mut request).await.is_err() || request != SSL_REQUEST {
                    return; // plaintext clients are turned away
                }
                if client.write_all(b"S").await.is_err() {
                    return;
                }
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    port
}

fn url_with(t: &TestDb, host: &str, port: u16, query: &str) -> String {
    let dal_config::DatabaseTarget::Postgres { url } = &t.config.target else {
        unreachable!()
    };
    let mut url = url::Url::parse(url.expose_secret()).unwrap();
    url.set_host(Some(host)).unwrap();
    url.set_port(Some(port)).unwrap();
    url.set_query(Some(query));
    url.to_string()
}

async fn connect(url: &str) -> dal::Result<Database> {
    Database::connect(
        &Config::postgres(url)?.with_acquire_timeout(std::time::Duration::from_secs(3)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sslmode_is_honoured() {
    async fn body(t: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let ours = pki();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &ours.ca_pem).unwrap();
        let wrong = dir.path().join("wrong-ca.pem");
        // A second, unrelated CA.
        std::fs::write(&wrong, pki().ca_pem).unwrap();
        let server = url::Url::parse(&parity_tests::postgres_admin_url()).unwrap();
        let upstream = format!(
            "{}:{}",
            server.host_str().unwrap(),
            server.port().unwrap_or(5432)
        );
        let port = tls_front(upstream, ours.server).await;

        // The right CA, the certificate's host name: accepted.
        let ok = url_with(
            &t,
            "localhost",
            port,
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        );
        let db = connect(&ok)
            .await
            .expect("verify-full with the right CA connects");
        db.users().create(NewUser::default()).await.unwrap();
        db.close().await.unwrap();

        // Another CA: refused, as a typed connection error.
        let bad_ca = url_with(
            &t,
            "localhost",
            port,
            &format!("sslmode=verify-full&sslrootcert={}", wrong.display()),
        );
        let err = connect(&bad_ca).await.unwrap_err();
        assert!(matches!(err, DalError::Connection { .. }), "{err:?}");

        // The right CA but a host the certificate does not name: verify-full refuses,
        // verify-ca (chain only) accepts.
        let other_host = |mode: &str| {
            url_with(
                &t,
                "127.0.0.1",
                port,
                &format!("sslmode={mode}&sslrootcert={}", ca.display()),
            )
        };
        assert!(matches!(
            connect(&other_host("verify-full")).await,
            Err(DalError::Connection { .. })
        ));
        connect(&other_host("verify-ca"))
            .await
            .expect("verify-ca does not check the host name");

        // The front only speaks TLS: a client told not to use it is turned away.
        assert!(
            connect(&url_with(&t, "localhost", port, "sslmode=disable"))
                .await
                .is_err()
        );

        // The real server: `require` encrypts (the server's own view says so) when the
        // server offers TLS, and fails when it does not; `disable` never encrypts.
        let server_port = server.port().unwrap_or(5432);
        let server_host = server.host_str().unwrap().to_owned();
        let ssl_in_use = |db: Database| async move {
            let row = db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<bool>(0).unwrap()
        };
        match connect(&url_with(&t, &server_host, server_port, "sslmode=require")).await {
            Ok(db) => assert!(ssl_in_use(db).await, "sslmode=require must encrypt"),
            Err(e) => assert!(
                matches!(e, DalError::Connection { .. }),
                "a server without TLS refuses require: {e:?}"
            ),
        }
        let plain = connect(&url_with(&t, &server_host, server_port, "sslmode=disable"))
            .await
            .unwrap();
        assert!(!ssl_in_use(plain).await, "sslmode=disable must not encrypt");
    }
    parity_tests::run(Backend::Postgres, Setup::Migrated, body).await;
}
