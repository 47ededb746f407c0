//! Sync through the HTTP sync server (`sync-server`): a real server on a loopback port in
//! front of the suite's Postgres, SQLite replicas talking to it with `HttpTransport`, and
//! raw HTTP requests where the point is what goes over the wire.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dal::prelude::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parity_tests::TestDb;
use sea_orm::ConnectionTrait;
use serde_json::{Value as Json, json};
use sync::engine::sync_once;
use sync::http::{
    ErrorBody, ErrorCode, HttpTransport, PULL_PATH, PUSH_PATH, StaticToken, TokenProvider,
};
use sync::protocol::{Entry, Op, PullRequest, PushBatch};
use sync::{SyncClient, SyncEngine, SyncOptions, Transport, TransportError};
use sync_server::{App, Limits, Verifier};
use uuid::Uuid;

use crate::sync::{run_postgres, server_world};

/// The HS256 secret the suite's server trusts.
pub(crate) const SECRET: &str = "the-suite's-jwt-secret-at-least-32-bytes";

/// Seconds since the epoch, `offset` from now.
pub(crate) fn epoch(offset: i64) -> i64 {
    chrono::Utc::now().timestamp() + offset
}

/// A token signed with `secret` carrying `claims`.
pub(crate) fn sign(claims: Json, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A good token for `user`, valid for an hour, as Supabase issues them.
pub(crate) fn token_for(user: Id) -> String {
    sign(
        json!({"sub": user.to_string(), "aud": "authenticated", "role": "authenticated", "exp": epoch(3600)}),
        SECRET,
    )
}

/// A sync server in this process on a free loopback port, over the test's database.
pub(crate) struct HttpRig {
    pub(crate) url: String,
    pub(crate) server: Database,
    pub(crate) options: SyncOptions,
    dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl HttpRig {
    pub(crate) async fn start(t: &TestDb) -> HttpRig {
        HttpRig::with_limits(t, Limits::default()).await
    }

    /// A server trusting the suite's secret, with `limits`.
    pub(crate) async fn with_limits(t: &TestDb, limits: Limits) -> HttpRig {
        let verifier = Verifier::new(Some(SECRET), None, "authenticated")
            .await
            .unwrap();
        HttpRig::with(t, verifier, limits).await
    }

    pub(crate) async fn with(t: &TestDb, verifier: Verifier, limits: Limits) -> HttpRig {
        let app = App::new(t.db.clone(), verifier, limits, t.direct_url.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(sync_server::serve(listener, app, async move {
            let _ = stopped.await;
        }));
        HttpRig {
            url,
            server: t.db.clone(),
            options: SyncOptions {
                batch: 50,
                page: 40,
                ..SyncOptions::default()
            },
            dir: tempfile::tempdir().unwrap(),
            _stop: stop,
        }
    }

    pub(crate) fn transport(&self, user: Id) -> HttpTransport {
        HttpTransport::new(&self.url, Arc::new(StaticToken::new(token_for(user)))).unwrap()
    }

    pub(crate) async fn client(&self, name: &str) -> SyncClient {
        let path = self.dir.path().join(format!("{name}.db"));
        let db = Database::connect(&Config::sqlite(path)).await.unwrap();
        SyncClient::open(db).await.unwrap()
    }

    pub(crate) async fn sync(&self, client: &SyncClient, user: Id) {
        sync_once(client, &self.transport(user), &self.options)
            .await
            .unwrap();
    }

    /// A raw request with `token` (none: no header) and `body`.
    pub(crate) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        gzip: bool,
    ) -> (u16, Vec<u8>) {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if gzip {
            request = request.header("content-encoding", "gzip");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }

    /// How many rows the server's sync bookkeeping holds: clients, log entries.
    pub(crate) async fn bookkeeping(&self) -> (i64, i64) {
        let count = |table: &'static str| {
            let db = self.server.clone();
            async move {
                db.transaction(move |uow| {
                    Box::pin(async move {
                        let row = uow
                            .query_one_raw(sea_orm::Statement::from_string(
                                uow.get_database_backend(),
                                format!("SELECT count(*) AS n FROM {table}"),
                            ))
                            .await?
                            .unwrap();
                        Ok(row.try_get::<i64>("", "n")?)
                    })
                })
                .await
                .unwrap()
            }
        };
        (count("sync_clients").await, count("sync_log").await)
    }
}

/// A second user with a project of their own: `(user, project)`.
pub(crate) async fn other_user(server: &Database, name: &str) -> (Id, Id) {
    let user = server
        .users()
        .create(NewUser::new().display_name(name))
        .await
        .unwrap();
    let project = server
        .projects()
        .create(NewProject::new(user.id, format!("{name}'s project")))
        .await
        .unwrap();
    (user.id, project.id)
}

pub(crate) fn body_of(bytes: &[u8]) -> ErrorBody {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "not an error body ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// A one-entry batch inserting a task into `project`.
pub(crate) fn task_batch(client: Uuid, seq: i64, project: Id, marker: &str) -> PushBatch {
    let mut changes = std::collections::BTreeMap::new();
    changes.insert("project_id".into(), json!(project.to_string()));
    changes.insert("task_type".into(), json!("render"));
    changes.insert("status".into(), json!("Queued"));
    changes.insert(
        "params".into(),
        json!(format!("{{\"marker\":\"{marker}\"}}")),
    );
    changes.insert("dependant_on".into(), json!("[]"));
    changes.insert("created_at".into(), json!("2026-12-07T00:00:00.000000Z"));
    changes.insert("updated_at".into(), json!("2026-12-07T00:00:00.000000Z"));
    PushBatch {
        client_id: client,
        entries: vec![Entry {
            seq,
            table: "tasks".into(),
            row_id: Uuid::new_v4(),
            op: Op::Insert,
            changes,
            base_version: 0,
            client_time: "2026-12-07T00:00:00.000000Z".into(),
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_round_trip_between_two_devices_of_a_user() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (user, project) = server_world(&rig.server).await;
        let (phone, laptop) = (rig.client("phone").await, rig.client("laptop").await);
        rig.sync(&phone, user).await;
        // Enough entries that the requests go gzip-compressed.
        for i in 0..60 {
            phone
                .database()
                .tasks()
                .create(NewTask::queued(project, "render", json!({"frame": i})))
                .await
                .unwrap();
        }
        rig.sync(&phone, user).await;
        assert_eq!(phone.pending().await.unwrap(), 0);
        rig.sync(&laptop, user).await;
        assert_eq!(
            laptop
                .database()
                .tasks()
                .count_for_project(project, &TaskFilter::default())
                .await
                .unwrap(),
            60
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_refuses_every_bad_token_and_writes_nothing() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (user, project) = server_world(&rig.server).await;
        let sub = user.to_string();
        let good = |extra: Json| {
            let mut claims = json!({"sub": sub, "aud": "authenticated", "exp": epoch(3600)});
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    claims.as_object_mut().unwrap().remove(k);
                } else {
                    claims[k] = v.clone();
                }
            }
            claims
        };
        let cases: Vec<(&str, Option<String>)> = vec![
            ("missing", None),
            ("not a jwt", Some("not-a-jwt".into())),
            (
                "expired",
                Some(sign(good(json!({"exp": epoch(-3600)})), SECRET)),
            ),
            (
                "forged",
                Some(sign(
                    good(json!({})),
                    "another-secret-of-32-bytes-or-more!!",
                )),
            ),
            (
                "wrong audience",
                Some(sign(good(json!({"aud": "anon"})), SECRET)),
            ),
            (
                "no audience",
                Some(sign(good(json!({"aud": null})), SECRET)),
            ),
            ("no expiry", Some(sign(good(json!({"exp": null})), SECRET))),
            ("no user", Some(sign(good(json!({"sub": null})), SECRET))),
            (
                "user not a uuid",
                Some(sign(good(json!({"sub": "service_role"})), SECRET)),
            ),
        ];
        let batch = serde_json::to_vec(&task_batch(Uuid::new_v4(), 1, project, "x")).unwrap();
        let pull = serde_json::to_vec(&PullRequest {
            limit: 100,
            ..PullRequest::default()
        })
        .unwrap();
        let before = rig.bookkeeping().await;
        for (case, token) in &cases {
            for (path, body) in [(PUSH_PATH, &batch), (PULL_PATH, &pull)] {
                let (status, bytes) = rig.post(path, token.as_deref(), body.clone(), false).await;
                assert_eq!(
                    status,
                    401,
                    "{case} on {path}: {}",
                    String::from_utf8_lossy(&bytes)
                );
                let error = body_of(&bytes);
                assert_eq!(error.error, ErrorCode::Unauthorized, "{case}");
                if let Some(token) = token {
                    assert!(
                        !error.message.contains(token.as_str()),
                        "{case}: the answer quotes the token"
                    );
                }
            }
        }
        assert_eq!(
            rig.bookkeeping().await,
            before,
            "a refused request wrote something"
        );
        assert_eq!(
            rig.server
                .tasks()
                .count_for_project(project, &TaskFilter::default())
                .await
                .unwrap(),
            0
        );
        // The same request with a good token goes through.
        let (status, _) = rig
            .post(PUSH_PATH, Some(&token_for(user)), batch, false)
            .await;
        assert_eq!(status, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_a_client_id_belongs_to_the_user_who_first_pushed_with_it() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (alice, alices_project) = server_world(&rig.server).await;
        let (bob, bobs_project) = other_user(&rig.server, "bob").await;
        let client = Uuid::new_v4();
        let ack = rig
            .transport(alice)
            .push(task_batch(client, 1, alices_project, "alice's"))
            .await
            .unwrap();
        assert_eq!(ack.last_seq, 1);
        let before = rig.bookkeeping().await;
        // Bob replays Alice's number, or continues her sequence, under her client id.
        for seq in [1, 2] {
            let err = rig
                .transport(bob)
                .push(task_batch(client, seq, bobs_project, "bob's"))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, TransportError::Refused(why) if why.contains("Forbidden")),
                "{err:?}"
            );
            assert!(!err.to_string().contains("last_seq"), "{err}");
        }
        assert_eq!(rig.bookkeeping().await, before);
        // Alice goes on as before.
        let ack = rig
            .transport(alice)
            .push(task_batch(client, 2, alices_project, "alice's again"))
            .await
            .unwrap();
        assert_eq!(ack.last_seq, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_oversized_and_malformed_requests_are_typed_and_write_nothing() {
    run_postgres(|t| async move {
        let limits = Limits {
            body_bytes: 64 * 1024,
            batch_entries: 3,
            page_rows: 500,
            ..Limits::default()
        };
        let rig = HttpRig::with_limits(&t, limits).await;
        let (user, project) = server_world(&rig.server).await;
        let token = token_for(user);
        let before = rig.bookkeeping().await;

        let mut batch = task_batch(Uuid::new_v4(), 1, project, "x");
        for seq in 2..=4 {
            let mut more = task_batch(batch.client_id, seq, project, "x").entries;
            batch.entries.append(&mut more);
        }
        // (case, path, body, gzipped, status, code)
        type Case = (&'static str, &'static str, Vec<u8>, bool, u16, ErrorCode);
        let cases: Vec<Case> = vec![
            (
                "four entries",
                PUSH_PATH,
                serde_json::to_vec(&batch).unwrap(),
                false,
                413,
                ErrorCode::TooLarge,
            ),
            (
                "a body over the limit",
                PUSH_PATH,
                vec![b' '; 65 * 1024],
                false,
                413,
                ErrorCode::TooLarge,
            ),
            (
                "a gzip bomb",
                PUSH_PATH,
                gzip(&[b' '; 4 * 1024 * 1024]),
                true,
                413,
                ErrorCode::TooLarge,
            ),
            (
                "a page over the limit",
                PULL_PATH,
                serde_json::to_vec(&PullRequest {
                    limit: 501,
                    ..PullRequest::default()
                })
                .unwrap(),
                false,
                413,
                ErrorCode::TooLarge,
            ),
            (
                "not json",
                PUSH_PATH,
                b"{\"client_id\":".to_vec(),
                false,
                400,
                ErrorCode::BadRequest,
            ),
            (
                "the wrong shape",
                PUSH_PATH,
                b"{\"entries\":[]}".to_vec(),
                false,
                400,
                ErrorCode::BadRequest,
            ),
            (
                "not gzip",
                PUSH_PATH,
                b"plain text".to_vec(),
                true,
                400,
                ErrorCode::BadRequest,
            ),
            (
                "a bad pull",
                PULL_PATH,
                b"[1,2]".to_vec(),
                false,
                400,
                ErrorCode::BadRequest,
            ),
        ];
        for (case, path, body, gzipped, status, code) in cases {
            let (got, bytes) = rig.post(path, Some(&token), body, gzipped).await;
            assert_eq!(got, status, "{case}: {}", String::from_utf8_lossy(&bytes));
            assert_eq!(body_of(&bytes).error, code, "{case}");
        }
        assert_eq!(
            rig.bookkeeping().await,
            before,
            "a refused request wrote something"
        );
        // Within the limits, compressed, it goes through.
        batch.entries.truncate(3);
        let (status, bytes) = rig
            .post(
                PUSH_PATH,
                Some(&token),
                gzip(&serde_json::to_vec(&batch).unwrap()),
                true,
            )
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    })
    .await;
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Hands out whatever token it holds now, counting requests.
struct SwitchableToken {
    token: std::sync::Mutex<String>,
    asked: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenProvider for SwitchableToken {
    async fn token(&self) -> Result<String, String> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Ok(self.token.lock().unwrap().clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_an_expired_token_stops_syncing_until_the_app_has_a_new_one() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let client = rig.client("phone").await;
        // A user who signed up on this device, offline.
        let user = client
            .database()
            .users()
            .create(NewUser::new())
            .await
            .unwrap()
            .id;
        let project = client
            .database()
            .projects()
            .create(NewProject::new(user, "offline"))
            .await
            .unwrap()
            .id;
        let expired = sign(
            json!({"sub": user.to_string(), "aud": "authenticated", "exp": epoch(-600)}),
            SECRET,
        );
        let tokens = Arc::new(SwitchableToken {
            token: std::sync::Mutex::new(expired),
            asked: AtomicUsize::new(0),
        });
        let transport = HttpTransport::new(&rig.url, tokens.clone()).unwrap();
        client
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", json!({})))
            .await
            .unwrap();
        let options = SyncOptions {
            push_interval: Duration::from_millis(20),
            pull_interval: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            ..SyncOptions::default()
        };
        let engine = SyncEngine::start(client.clone(), Arc::new(transport), options);
        let err = engine.sync_now().await.unwrap_err();
        assert!(err.contains("unauthorized"), "{err}");
        let status = engine.status().await;
        assert!(status.unauthorized, "{status:?}");
        assert!(status.last_error.unwrap().contains("expired"));
        // No retrying a request that cannot succeed: the token is not even asked for.
        let asked = tokens.asked.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            tokens.asked.load(Ordering::SeqCst) <= asked + 1,
            "the engine kept retrying"
        );
        // The app signs in again and says so.
        *tokens.token.lock().unwrap() = token_for(user);
        engine.sync_now().await.unwrap();
        let status = engine.status().await;
        assert!(
            !status.unauthorized && status.last_error.is_none(),
            "{status:?}"
        );
        assert_eq!(status.pending, 0);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_live_updates_reach_an_online_replica_without_polling() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (user, project) = server_world(&rig.server).await;
        let client = rig.client("phone").await;
        rig.sync(&client, user).await;
        let options = SyncOptions {
            // Polling alone would take an hour.
            push_interval: Duration::from_secs(3600),
            pull_interval: Duration::from_secs(3600),
            ..SyncOptions::default()
        };
        let engine = SyncEngine::start(client.clone(), Arc::new(rig.transport(user)), options);
        engine.sync_now().await.unwrap();
        // Another writer (the web app, say) changes the server.
        let task = rig
            .server
            .tasks()
            .create(NewTask::queued(
                project,
                "render",
                json!({"from": "the web"}),
            ))
            .await
            .unwrap();
        let started = Instant::now();
        loop {
            if client.database().tasks().get(task.id).await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the change did not arrive without polling"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_health_answers_without_a_token() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let response = reqwest::get(format!("{}/health", rig.url)).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.json::<Json>().await.unwrap()["status"], "ok");
        // The events stream wants a token like everything else.
        let response = reqwest::get(format!("{}{}", rig.url, sync::http::EVENTS_PATH))
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
    })
    .await;
}

/// An ES256 key pair as Supabase's asymmetric signing keys are: the private key to sign
/// with, and its public half as a JWKS document.
pub(crate) fn es256_key(kid: &str) -> (EncodingKey, Json) {
    use base64::Engine;
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = pair.public_key_raw();
    assert_eq!(point.len(), 65, "an uncompressed P-256 point");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..]),
    }]});
    (
        EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        jwks,
    )
}

pub(crate) fn es256_token(key: &EncodingKey, kid: &str, user: Id) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let claims = json!({"sub": user.to_string(), "aud": "authenticated", "exp": epoch(3600)});
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_asymmetric_keys_from_a_jwks_file_or_url() {
    run_postgres(|t| async move {
        let (key, jwks) = es256_key("key-1");
        let (stranger, _) = es256_key("key-1");
        let (rotated, rotated_jwks) = es256_key("key-2");

        // From a file.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, jwks.to_string()).unwrap();
        let verifier = Verifier::new(
            None,
            Some(sync_server::JwksSource::File(file)),
            "authenticated",
        )
        .await
        .unwrap();
        let rig = HttpRig::with(&t, verifier, Limits::default()).await;
        let (user, _) = server_world(&rig.server).await;
        let pull = serde_json::to_vec(&PullRequest {
            limit: 10,
            ..PullRequest::default()
        })
        .unwrap();
        let (status, _) = rig
            .post(
                PULL_PATH,
                Some(&es256_token(&key, "key-1", user)),
                pull.clone(),
                false,
            )
            .await;
        assert_eq!(status, 200);
        for (case, token) in [
            (
                "a key with the same id, not in the set",
                es256_token(&stranger, "key-1", user),
            ),
            ("an unknown key id", es256_token(&rotated, "key-2", user)),
            ("HS256 when only a JWKS is trusted", token_for(user)),
        ] {
            let (status, _) = rig.post(PULL_PATH, Some(&token), pull.clone(), false).await;
            assert_eq!(status, 401, "{case}");
        }

        // From a URL, fetched again when a token names a key it does not know (rotation),
        // but not for every such token (a flood of forged key ids).
        let served = Arc::new(std::sync::Mutex::new(jwks.clone()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get({
                let (served, fetches) = (served.clone(), fetches.clone());
                move || {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let body = served.lock().unwrap().clone();
                    async move { axum::Json(body) }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let bearer = |token: String| format!("Bearer {token}");
        let rotating = Verifier::new(
            None,
            Some(sync_server::JwksSource::Url(jwks_url.clone())),
            "authenticated",
        )
        .await
        .unwrap()
        .with_refetch_interval(Duration::ZERO);
        assert_eq!(
            rotating
                .user(Some(&bearer(es256_token(&key, "key-1", user))))
                .await,
            Ok(user.uuid())
        );
        *served.lock().unwrap() = json!({"keys": [jwks["keys"][0], rotated_jwks["keys"][0]]});
        assert_eq!(
            rotating
                .user(Some(&bearer(es256_token(&rotated, "key-2", user))))
                .await,
            Ok(user.uuid())
        );
        assert_eq!(
            rotating
                .user(Some(&bearer(es256_token(&stranger, "key-3", user))))
                .await,
            Err(sync_server::AuthError::UnknownKey)
        );

        let guarded = Verifier::new(
            None,
            Some(sync_server::JwksSource::Url(jwks_url)),
            "authenticated",
        )
        .await
        .unwrap();
        let fetched = fetches.load(Ordering::SeqCst);
        for i in 0..20 {
            let token = es256_token(&stranger, &format!("forged-{i}"), user);
            assert_eq!(
                guarded.user(Some(&bearer(token))).await,
                Err(sync_server::AuthError::UnknownKey)
            );
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            fetched,
            "forged key ids made the server fetch the JWKS"
        );
    })
    .await;
}

/// A free loopback port (bound and let go: a process of the test binds it next).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How to start the sync server as a process of its own over the test's database.
#[derive(Clone)]
pub(crate) struct ServerProcess {
    database_url: String,
    listen_url: Option<String>,
    pooled: bool,
}

impl ServerProcess {
    pub(crate) fn of(t: &TestDb) -> ServerProcess {
        let database_url = match &t.config.target {
            dal_config::DatabaseTarget::Postgres { url } => url.expose_secret().to_owned(),
            _ => unreachable!("the sync server runs on Postgres"),
        };
        ServerProcess {
            database_url,
            listen_url: t.direct_url.clone(),
            pooled: t.through_pgbouncer(),
        }
    }

    /// Starts it on `port`, its log to `log`.
    pub(crate) fn spawn(&self, port: u16, log: std::process::Stdio) -> std::process::Child {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sync_server"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("SYNC_JWT_SECRET", SECRET)
            .env("SYNC_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .stderr(log)
            .stdout(std::process::Stdio::null());
        if self.pooled {
            command.env("DB_POOL_MODE", "transaction");
            if let Some(direct) = &self.listen_url {
                command.env("SYNC_LISTEN_DATABASE_URL", direct);
            }
        }
        command.spawn().unwrap()
    }
}

/// Waits until the server on `port` answers its health check.
pub(crate) async fn wait_healthy(port: u16) {
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/health")).await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sync server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_the_server_process_never_logs_tokens_or_row_contents() {
    run_postgres(|t| async move {
        // The schema first, so the process's own migration run is a no-op.
        let (user, project) = server_world(&t.db).await;
        let log = tempfile::NamedTempFile::new().unwrap();
        let port = free_port();
        let mut child = ServerProcess::of(&t).spawn(port, log.reopen().unwrap().into());
        wait_healthy(port).await;
        let token = token_for(user);
        let url = format!("http://127.0.0.1:{port}");
        let transport =
            HttpTransport::new(&url, Arc::new(StaticToken::new(token.clone()))).unwrap();
        let marker = "a-row-value-that-must-not-be-logged";
        let batch = task_batch(Uuid::new_v4(), 1, project, marker);
        transport.push(batch.clone()).await.unwrap();
        // A refused one too: the reasons are logged, never the values.
        let mut bad = task_batch(batch.client_id, 2, project, marker);
        bad.entries[0]
            .changes
            .insert("status".into(), json!(marker));
        transport.push(bad).await.unwrap();
        transport
            .pull(PullRequest {
                limit: 100,
                ..PullRequest::default()
            })
            .await
            .unwrap();
        let forged =
            HttpTransport::new(&url, Arc::new(StaticToken::new(format!("{token}x")))).unwrap();
        assert!(
            forged
                .pull(PullRequest {
                    limit: 1,
                    ..PullRequest::default()
                })
                .await
                .is_err()
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let logged = std::fs::read_to_string(log.path()).unwrap();
        assert!(
            logged.contains("push"),
            "the server logged nothing:\n{logged}"
        );
        assert!(
            !logged.contains(&token[20..]),
            "a token is in the log:\n{logged}"
        );
        assert!(
            !logged.contains(marker),
            "row contents are in the log:\n{logged}"
        );
    })
    .await;
}

/// A load balancer in front of server processes: each request goes to one of them at
/// random, and now and then one is killed (SIGKILL) while a push is in flight, then
/// started again on its port.
struct Balancer {
    servers: Vec<(u16, HttpTransport)>,
    children: Arc<std::sync::Mutex<Vec<std::process::Child>>>,
    process: ServerProcess,
    rng: std::sync::Mutex<rand::rngs::StdRng>,
    pushes: AtomicUsize,
    kills: Arc<AtomicUsize>,
}

impl Balancer {
    fn pick(&self) -> usize {
        use rand::Rng;
        self.rng.lock().unwrap().random_range(0..self.servers.len())
    }

    /// Kills instance `i` a few milliseconds from now (while the request just sent is
    /// being applied) and starts it again once it is gone.
    fn kill_soon(&self, i: usize) {
        use rand::Rng;
        let delay = Duration::from_millis(self.rng.lock().unwrap().random_range(0..20));
        let (children, process, kills) = (
            self.children.clone(),
            self.process.clone(),
            self.kills.clone(),
        );
        let port = self.servers[i].0;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut children = children.lock().unwrap();
            children[i].kill().unwrap();
            children[i].wait().unwrap();
            children[i] = process.spawn(port, std::process::Stdio::null());
            kills.fetch_add(1, Ordering::SeqCst);
        });
    }
}

#[async_trait::async_trait]
impl Transport for Balancer {
    async fn push(&self, batch: PushBatch) -> Result<sync::protocol::PushAck, TransportError> {
        let i = self.pick();
        if self.pushes.fetch_add(1, Ordering::SeqCst) % 20 == 9 {
            self.kill_soon(i);
        }
        // As a load balancer does with a request whose instance went away, the push is
        // sent again to the other one: pushes are safe to repeat (exactly once by
        // sequence number), and the first attempt may have committed before the kill.
        match self.servers[i].1.push(batch.clone()).await {
            Err(TransportError::Transient(_)) => self.servers[1 - i].1.push(batch).await,
            answered => answered,
        }
    }

    async fn pull(&self, request: PullRequest) -> Result<sync::protocol::PullPage, TransportError> {
        let i = self.pick();
        match self.servers[i].1.pull(request.clone()).await {
            Err(TransportError::Transient(_)) => self.servers[1 - i].1.pull(request).await,
            answered => answered,
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for child in self.children.lock().unwrap().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_two_server_processes_one_killed_mid_batch_converge_exactly_once() {
    use rand::SeedableRng;
    let seed: u64 = std::env::var("DAL_SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    run_postgres(|t| async move {
        let process = ServerProcess::of(&t);
        let ports = [free_port(), free_port()];
        let children: Vec<_> = ports
            .iter()
            .map(|port| process.spawn(*port, std::process::Stdio::null()))
            .collect();
        for port in ports {
            wait_healthy(port).await;
        }
        let user = Id(Uuid::from_u128(1)); // the simulation's user
        let balancer = Arc::new(Balancer {
            servers: ports
                .iter()
                .map(|port| {
                    let url = format!("http://127.0.0.1:{port}");
                    (
                        *port,
                        HttpTransport::new(&url, Arc::new(StaticToken::new(token_for(user))))
                            .unwrap(),
                    )
                })
                .collect(),
            children: Arc::new(std::sync::Mutex::new(children)),
            process,
            rng: std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            pushes: AtomicUsize::new(0),
            kills: Arc::new(AtomicUsize::new(0)),
        });
        let rig = crate::sync::Rig::over(&t, seed, balancer.clone());
        let offsets = vec![chrono::Duration::zero(); 4];
        let outcome = crate::sync::simulate_on(rig, seed, &offsets, 300).await;
        assert!(outcome.server.keys().any(|(table, _)| table == "tasks"));
        assert!(
            balancer.kills.load(Ordering::SeqCst) > 0,
            "no server was killed"
        );
        println!(
            "sync over HTTP: {} server kills",
            balancer.kills.load(Ordering::SeqCst)
        );
    })
    .await;
}

/// Every page of a full pull as `user`, as the bytes the server sent.
async fn pull_bytes(rig: &HttpRig, user: Id) -> Vec<u8> {
    let token = token_for(user);
    let mut all = Vec::new();
    let mut request = PullRequest {
        limit: 3,
        ..PullRequest::default()
    };
    loop {
        let (status, bytes) = rig
            .post(
                PULL_PATH,
                Some(&token),
                serde_json::to_vec(&request).unwrap(),
                false,
            )
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        let page: sync::protocol::PullPage = serde_json::from_slice(&bytes).unwrap();
        all.extend_from_slice(&bytes);
        match page.next {
            Some(next) => {
                request.to_txid = Some(page.to_txid);
                request.after = Some(next);
            }
            None => return all,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_a_user_reads_and_writes_only_their_own_rows() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (alice, alices_project) = server_world(&rig.server).await;
        let (bob, bobs_project) = other_user(&rig.server, "bob").await;
        let alices_task = rig
            .server
            .tasks()
            .create(NewTask::queued(
                alices_project,
                "alice-secret-type",
                json!({}),
            ))
            .await
            .unwrap();
        let bobs_task = rig
            .server
            .tasks()
            .create(NewTask::queued(bobs_project, "render", json!({})))
            .await
            .unwrap();

        // On the wire: nothing of Alice's reaches Bob.
        let sent = String::from_utf8(pull_bytes(&rig, bob).await).unwrap();
        for secret in [
            alice.to_string(),
            alices_project.to_string(),
            alices_task.id.to_string(),
            "alice-secret-type".to_owned(),
            "shared".to_owned(),
        ] {
            assert!(!sent.contains(&secret), "Bob's pull carried {secret}");
        }
        assert!(sent.contains(&bobs_task.id.to_string()));

        // In the replica: Bob's user row, project and task, nothing else.
        let replica = rig.client("bob").await;
        rig.sync(&replica, bob).await;
        let rows = sync::snapshot::snapshot(replica.database()).await.unwrap();
        let mut tables: Vec<&str> = rows.keys().map(|(table, _)| table.as_str()).collect();
        tables.sort();
        assert_eq!(tables, ["projects", "tasks", "users"], "{rows:?}");
        assert!(
            rows.keys()
                .all(|(_, id)| *id != alice.to_string() && *id != alices_project.to_string())
        );

        // Writes outside Bob's rows are refused one by one (dead letters), and an update of
        // Alice's task reads exactly like one of a task that does not exist.
        replica
            .database()
            .tasks()
            .create(NewTask::queued(bobs_project, "render", json!({"ok": true})))
            .await
            .unwrap();
        let client = Uuid::new_v4();
        let transport = rig.transport(bob);
        let mut batch = task_batch(client, 1, alices_project, "into alice's project");
        let update = |seq: i64, row_id: Uuid| {
            let mut changes = std::collections::BTreeMap::new();
            changes.insert("params".into(), json!("{\"by\":\"bob\"}"));
            Entry {
                seq,
                table: "tasks".into(),
                row_id,
                op: Op::Update,
                changes,
                base_version: 1,
                client_time: "2026-12-07T00:00:00.000000Z".into(),
            }
        };
        batch.entries.push(update(2, alices_task.id.uuid()));
        batch.entries.push(update(3, Uuid::new_v4()));
        batch.entries.push(update(4, bobs_task.id.uuid()));
        let ack = transport.push(batch).await.unwrap();
        assert_eq!(ack.last_seq, 4);
        let rejected: Vec<i64> = ack.rejected.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(rejected, [1, 2, 3], "{:?}", ack.rejected);
        let reason = |seq: i64| {
            ack.rejected
                .iter()
                .find(|(s, _)| *s == seq)
                .unwrap()
                .1
                .replace(&alices_task.id.to_string(), "<id>")
        };
        let missing = ack.rejected[2].1.clone();
        let missing_id = missing
            .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
            .find(|w| w.len() == 36)
            .map(str::to_owned);
        let missing = match missing_id {
            Some(id) => missing.replace(&id, "<id>"),
            None => missing,
        };
        assert_eq!(
            reason(2),
            missing,
            "another user's row answers unlike a missing one"
        );
        let acked: String = serde_json::to_string(&ack).unwrap();
        assert!(
            !acked.contains("alice-secret-type"),
            "the answer carried Alice's row: {acked}"
        );
        assert_eq!(
            rig.server.tasks().get(alices_task.id).await.unwrap().params,
            json!({}),
            "Bob changed Alice's task"
        );
        assert_eq!(
            rig.server
                .tasks()
                .count_for_project(alices_project, &TaskFilter::default())
                .await
                .unwrap(),
            1,
            "Bob added a task to Alice's project"
        );
        assert_eq!(
            rig.server.tasks().get(bobs_task.id).await.unwrap().params,
            json!({"by": "bob"})
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_over_https_with_a_private_ca() {
    run_postgres(|t| async move {
        // A certificate for the loopback address, signed by itself: the private CA.
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();

        let tls = sync_server::tls::load(&cert_file, &key_file).unwrap();
        let verifier = Verifier::new(Some(SECRET), None, "authenticated")
            .await
            .unwrap();
        let app = App::new(t.db.clone(), verifier, Limits::default(), None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(sync_server::serve_tls(
            listener,
            tls,
            app,
            std::future::pending(),
        ));

        let (user, project) = server_world(&t.db).await;
        let tokens = Arc::new(StaticToken::new(token_for(user)));
        let trusting =
            HttpTransport::with_roots(&url, tokens.clone(), &[cert.pem().as_bytes()]).unwrap();
        let client = {
            let db = Database::connect(&Config::sqlite(dir.path().join("phone.db")))
                .await
                .unwrap();
            SyncClient::open(db).await.unwrap()
        };
        sync_once(&client, &trusting, &SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(
            client
                .database()
                .projects()
                .get(project)
                .await
                .unwrap()
                .name,
            "shared"
        );

        // Without the CA the certificate is not trusted: a transient failure, nothing sent.
        let untrusting = HttpTransport::new(&url, tokens).unwrap();
        let err = untrusting
            .pull(PullRequest {
                limit: 1,
                ..PullRequest::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Transient(_)), "{err:?}");
        // A client that never finishes its handshake holds up nobody.
        let _stalled = tokio::net::TcpStream::connect(
            url.trim_start_matches("https://")
                .replace("localhost", "127.0.0.1"),
        )
        .await
        .unwrap();
        sync_once(&client, &trusting, &SyncOptions::default())
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_a_batch_over_the_servers_limits_goes_in_halves() {
    run_postgres(|t| async move {
        let limits = Limits {
            body_bytes: 64 * 1024,
            batch_entries: 16,
            page_rows: 10_000,
            ..Limits::default()
        };
        let rig = HttpRig::with_limits(&t, limits).await;
        let (user, project) = server_world(&rig.server).await;
        let client = rig.client("phone").await;
        rig.sync(&client, user).await;
        // 100 tasks of ~2 KB: batches of 50 are over both limits.
        let padding = "x".repeat(2000);
        for i in 0..100 {
            client
                .database()
                .tasks()
                .create(NewTask::queued(
                    project,
                    "render",
                    json!({"i": i, "pad": padding}),
                ))
                .await
                .unwrap();
        }
        rig.sync(&client, user).await;
        assert_eq!(client.pending().await.unwrap(), 0);
        assert!(client.dead_letters().await.unwrap().is_empty());
        assert_eq!(
            rig.server
                .tasks()
                .count_for_project(project, &TaskFilter::default())
                .await
                .unwrap(),
            100
        );
    })
    .await;
}

/// With an issuer configured (`SYNC_JWT_ISSUER`), a token must carry exactly it; without
/// one, `iss` is not looked at.
#[tokio::test]
async fn sync_http_checks_the_issuer_when_one_is_configured() {
    let issuer = "https://abcd.supabase.co/auth/v1";
    let user = Uuid::new_v4();
    let claims = |iss: Option<&str>| {
        let mut claims =
            json!({"sub": user.to_string(), "aud": "authenticated", "exp": epoch(3600)});
        if let Some(iss) = iss {
            claims["iss"] = json!(iss);
        }
        format!("Bearer {}", sign(claims, SECRET))
    };
    let checking = Verifier::new(Some(SECRET), None, "authenticated")
        .await
        .unwrap()
        .with_issuer(Some(issuer.to_owned()));
    assert_eq!(
        checking.user(Some(&claims(Some(issuer)))).await.unwrap(),
        user
    );
    for (case, token) in [
        (
            "another issuer",
            claims(Some("https://evil.example/auth/v1")),
        ),
        ("a prefix of it", claims(Some("https://abcd.supabase.co"))),
        ("none", claims(None)),
    ] {
        let refused = checking.user(Some(&token)).await;
        assert!(
            matches!(refused, Err(sync_server::AuthError::WrongIssuer)),
            "{case}: {refused:?}"
        );
    }
    let unchecked = Verifier::new(Some(SECRET), None, "authenticated")
        .await
        .unwrap();
    for iss in [Some(issuer), Some("https://elsewhere.example"), None] {
        assert_eq!(
            unchecked.user(Some(&claims(iss))).await.unwrap(),
            user,
            "{iss:?}"
        );
    }
}
