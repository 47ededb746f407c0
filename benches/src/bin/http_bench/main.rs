//! `cargo run --release -p dal-bench --bin http-bench [-- --quick]`
//!
//! Sync through the HTTP sync server on loopback against the direct Postgres transport,
//! in the same run on the same scratch database: a full pull into a new replica
//! (throughput and peak memory growth), pushing a long outbox, a sync with nothing to do
//! (median and p99), a new replica started from the server's snapshot instead (the
//! snapshot crate's bootstrap), and, over HTTP only, live-update latency: a change committed on the
//! server until it is visible in an online replica (median and p99). Prints Markdown (see
//! BENCHMARKS.md). `--quick` uses tiny sizes so CI keeps it running; its numbers mean
//! nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dal::prelude::*;
use dal_bench::measure::{measured, median, percentile, remove_replica, replica};
use serde_json::json;
use sync::engine::sync_once;
use sync::http::{HttpTransport, StaticToken};
use sync::{PostgresTransport, SyncEngine, SyncOptions, Transport};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: dal_bench::CommonArgs,
    /// Rows of the full pull.
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// Entries of the pushed outbox.
    #[arg(long, default_value_t = 10_000)]
    writes: usize,
    /// Rounds of the pulls and pushes (the transports interleaved); medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// The token secret of the benchmark's server.
const SECRET: &str = "http-bench-secret-of-at-least-32-bytes!";

fn token(user: Id) -> String {
    let claims = json!({
        "sub": user.to_string(),
        "aud": "authenticated",
        "exp": chrono::Utc::now().timestamp() + 24 * 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token signs")
}

/// One line of the report: what, over HTTP, directly, and the ratio.
struct Line {
    operation: String,
    http: String,
    direct: String,
    ratio: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let (rows, writes, rounds, empties, lives) = if args.common.quick {
        (2_000, 200, 1, 20, 5)
    } else {
        (args.rows, args.writes, args.rounds.max(1), 200, 50)
    };
    let scratch = dal_bench::ScratchPostgres::create(&args.common.postgres_url).await;
    let server = Database::connect(&Config::postgres(&scratch.url).expect("scratch URL"))
        .await
        .expect("scratch database connects");
    server.migrate().await.expect("migrations apply");

    // The sync server, in this process, on a loopback port.
    let verifier = sync_server::Verifier::new(Some(SECRET), None, "authenticated")
        .await
        .expect("verifier");
    let app = sync_server::App::new(
        server.clone(),
        verifier,
        sync_server::Limits::default(),
        Some(scratch.url.clone()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(sync_server::serve(listener, app, std::future::pending()));

    let user = server.users().create(NewUser::default()).await.unwrap();
    let project = server
        .projects()
        .create(NewProject::new(user.id, "bench"))
        .await
        .unwrap();
    let http: Arc<dyn Transport> = Arc::new(
        HttpTransport::new(&url, Arc::new(StaticToken::new(token(user.id)))).expect("transport"),
    );
    let direct: Arc<dyn Transport> = Arc::new(PostgresTransport::new(server.clone()));
    let transports = [("http", http.clone()), ("direct", direct.clone())];
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SyncOptions::default();
    let mut lines = Vec::new();

    // Push of a `writes`-entry outbox, from a replica that has the server's rows.
    let mut pushes = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for (i, (name, transport)) in transports.iter().enumerate() {
            let client = replica(dir.path(), &format!("push-{name}-{round}")).await;
            sync_once(&client, transport.as_ref(), &options)
                .await
                .expect("first sync");
            let local = (0..writes)
                .map(|n| NewTask::queued(project.id, "local", json!({"n": n})))
                .collect();
            client
                .database()
                .tasks()
                .insert_many(local)
                .await
                .expect("local writes");
            let started = Instant::now();
            sync_once(&client, transport.as_ref(), &options)
                .await
                .expect("push");
            pushes[i].push(started.elapsed().as_secs_f64());
            assert_eq!(client.pending().await.unwrap(), 0, "the outbox drained");
            client.database().clone().close().await.ok();
        }
    }
    let rate = |samples: &Vec<f64>, n: usize| n as f64 / median(samples.clone());
    let (http_rate, direct_rate) = (rate(&pushes[0], writes), rate(&pushes[1], writes));
    lines.push(Line {
        operation: format!(
            "push of a {writes}-entry outbox, batches of {}",
            options.batch
        ),
        http: format!("{http_rate:.0} entries/s"),
        direct: format!("{direct_rate:.0} entries/s"),
        ratio: format!("{:.2}x", http_rate / direct_rate),
    });

    // Full pull of `rows` rows into a new replica.
    // The pushes left their tasks: fill up to `rows` rows in all.
    let have = server
        .tasks()
        .count_for_project(project.id, &TaskFilter::default())
        .await
        .expect("count") as usize;
    for start in (have..rows).step_by(20_000) {
        let chunk = (start..rows.min(start + 20_000))
            .map(|i| NewTask::queued(project.id, "render", json!({"frame": i})))
            .collect();
        server
            .tasks()
            .insert_many(chunk)
            .await
            .expect("bulk insert");
    }
    let mut pulls: [(Vec<f64>, f64); 2] = [(Vec::new(), 0.0), (Vec::new(), 0.0)];
    for round in 0..rounds {
        for (i, (name, transport)) in transports.iter().enumerate() {
            let file = format!("pull-{name}-{round}");
            let client = replica(dir.path(), &file).await;
            let (outcome, seconds, growth) =
                measured(sync_once(&client, transport.as_ref(), &options)).await;
            outcome.expect("full pull");
            pulls[i].0.push(seconds);
            pulls[i].1 = pulls[i].1.max(growth.unwrap_or(0.0));
            client.database().clone().close().await.ok();
            remove_replica(&dir.path().join(format!("{file}.db")));
        }
    }
    let (http_rate, direct_rate) = (
        rate(&pulls[0].0, rows.max(have) + 2),
        rate(&pulls[1].0, rows.max(have) + 2),
    );
    lines.push(Line {
        operation: format!(
            "full pull into a new replica, {} rows, pages of {} (peak memory growth)",
            rows.max(have) + 2,
            options.page
        ),
        http: format!("{http_rate:.0} rows/s ({:.1} MiB)", pulls[0].1),
        direct: format!("{direct_rate:.0} rows/s ({:.1} MiB)", pulls[1].1),
        ratio: format!("{:.2}x", http_rate / direct_rate),
    });

    // The same rows as a new device's first sync from the server's snapshot: over HTTP
    // (`GET /v1/snapshot`, checked and put in place), and directly (the server's export
    // into the file, then the same check and import), then the first pull from its point.
    let mut boots: [(Vec<f64>, f64); 2] = [(Vec::new(), 0.0), (Vec::new(), 0.0)];
    let bootstrap_transport =
        HttpTransport::new(&url, Arc::new(StaticToken::new(token(user.id)))).expect("transport");
    for round in 0..rounds {
        for (i, (name, transport)) in transports.iter().enumerate() {
            let local = dir.path().join(format!("boot-{name}-{round}.db"));
            let made = async {
                if i == 0 {
                    snapshot::bootstrap(&bootstrap_transport, &local)
                        .await
                        .expect("bootstrap");
                } else {
                    let file = dir.path().join(format!("boot-{name}-{round}.snapshot"));
                    let options = snapshot::ExportOptions {
                        scope: snapshot::Scope::User(user.id.0),
                        ..snapshot::ExportOptions::new("http-bench")
                    };
                    snapshot::export(&server, &file, &options, |_| {})
                        .await
                        .expect("export");
                    snapshot::import(&file, &local, false)
                        .await
                        .expect("import");
                    std::fs::remove_file(&file).ok();
                }
                let db = Database::connect(&Config::sqlite(&local))
                    .await
                    .expect("replica opens");
                let client = sync::SyncClient::open(db).await.expect("sync client");
                sync_once(&client, transport.as_ref(), &options)
                    .await
                    .expect("first pull");
                assert_eq!(client.pending().await.unwrap(), 0, "nothing pushed back");
                client
            };
            let (client, seconds, growth) = measured(made).await;
            boots[i].0.push(seconds);
            boots[i].1 = boots[i].1.max(growth.unwrap_or(0.0));
            client.database().clone().close().await.ok();
            remove_replica(&local);
        }
    }
    let total = rows.max(have) + 2;
    let (http_rate, direct_rate) = (rate(&boots[0].0, total), rate(&boots[1].0, total));
    lines.push(Line {
        operation: format!(
            "new replica from the server's snapshot, then its first pull, {total} rows (peak memory growth)"
        ),
        http: format!("{http_rate:.0} rows/s ({:.1} MiB)", boots[0].1),
        direct: format!("{direct_rate:.0} rows/s ({:.1} MiB)", boots[1].1),
        ratio: format!("{:.2}x", http_rate / direct_rate),
    });

    // A sync with nothing to do.
    let mut empty: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let clients = [
        replica(dir.path(), "empty-http").await,
        replica(dir.path(), "empty-direct").await,
    ];
    for (i, (_, transport)) in transports.iter().enumerate() {
        sync_once(&clients[i], transport.as_ref(), &options)
            .await
            .expect("catch up");
    }
    for _ in 0..empties {
        for (i, (_, transport)) in transports.iter().enumerate() {
            let started = Instant::now();
            sync_once(&clients[i], transport.as_ref(), &options)
                .await
                .expect("empty sync");
            empty[i].push(started.elapsed());
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (h50, d50) = (
        percentile(empty[0].clone(), 0.5),
        percentile(empty[1].clone(), 0.5),
    );
    lines.push(Line {
        operation: format!("sync with nothing to push or pull, median / p99 of {empties}"),
        http: format!(
            "{:.2} ms / {:.2} ms",
            ms(h50),
            ms(percentile(empty[0].clone(), 0.99))
        ),
        direct: format!(
            "{:.2} ms / {:.2} ms",
            ms(d50),
            ms(percentile(empty[1].clone(), 0.99))
        ),
        ratio: format!("{:.2}x", ms(h50) / ms(d50)),
    });

    // Live updates: a change committed on the server until an online replica has it.
    let online = clients[0].clone();
    let engine = SyncEngine::start(
        online.clone(),
        http.clone(),
        SyncOptions {
            push_interval: Duration::from_secs(3600),
            pull_interval: Duration::from_secs(3600),
            ..SyncOptions::default()
        },
    );
    engine.sync_now().await.expect("online");
    let mut latencies = Vec::new();
    for n in 0..lives {
        // Let the previous change's pull finish, so each sample starts from quiet.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let task = server
            .tasks()
            .create(NewTask::queued(project.id, "live", json!({"n": n})))
            .await
            .expect("server write");
        let committed = started.elapsed();
        loop {
            if online.database().tasks().get(task.id).await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "a live update never arrived"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(started.elapsed().saturating_sub(committed));
    }
    engine.shutdown().await;
    lines.push(Line {
        operation: format!(
            "live update: committed on the server → in an online replica, median / p99 of {lives}"
        ),
        http: format!(
            "{:.1} ms / {:.1} ms",
            ms(percentile(latencies.clone(), 0.5)),
            ms(percentile(latencies, 0.99))
        ),
        direct: "(polling only)".into(),
        ratio: String::new(),
    });

    println!("| operation | HTTP server (loopback) | direct transport | HTTP/direct |");
    println!("|---|---:|---:|---:|");
    for line in lines {
        println!(
            "| {} | {} | {} | {} |",
            line.operation, line.http, line.direct, line.ratio
        );
    }
    if args.common.quick {
        println!("\n(--quick: sizes are tiny; these numbers mean nothing)");
    }
    for client in clients {
        client.database().clone().close().await.ok();
    }
    server.close().await.ok();
    scratch.drop_database().await;
}
