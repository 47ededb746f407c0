//! The sync page: a replica's dead letters (retry, discard, each confirmed) and outbox,
//! the server's conflict log. A replica is SQLite and its server Postgres, so each test
//! uses both.

use parity_tests::{Setup, Target};
use reqwest::StatusCode;

use crate::replica::{sync, world};
use crate::web::{Web, all_between};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_retried_or_discarded_after_a_confirmation() {
    parity_tests::run_on(Target::Postgres, Setup::Migrated, |t| async move {
        let dir = tempfile::tempdir().unwrap();
        let w = world(&t, dir.path()).await;

        // The server's conflict log has B's win over A's name.
        let server = Web::start(&t, false).await;
        let log = server.page("/sync").await;
        let conflicts = all_between(&log, "<tr class=\"conflict\">", "</tr>");
        assert!(
            conflicts
                .iter()
                .any(|c| c.contains("alpha") && c.contains("beta")),
            "{log}"
        );

        // B's replica: the dead letter and its reason.
        let replica = Web::start_with(w.b.database().clone(), w.b_config.clone(), true).await;
        let page = replica.page("/sync").await;
        let letters = all_between(&page, "<tr class=\"dead-letter\" data-seq=\"", "\"");
        assert_eq!(letters.len(), 1, "{page}");
        let seq = letters[0].to_owned();
        assert!(page.contains("was deleted"), "the reason is shown: {page}");
        assert!(page.contains(&w.orphan.0.to_string()));

        // Asking changes nothing; confirming moves it back to the outbox.
        let confirm = replica
            .page(&format!("/sync/dead-letters/{seq}/retry"))
            .await;
        assert!(confirm.contains("id=\"confirm\""));
        assert_eq!(w.b.dead_letters().await.unwrap().len(), 1);
        let done = replica
            .post(&format!("/sync/dead-letters/{seq}/retry"), &[])
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert!(w.b.dead_letters().await.unwrap().is_empty());
        assert_eq!(w.b.pending().await.unwrap(), 1);
        let page = replica.page("/sync").await;
        assert_eq!(all_between(&page, "<tr class=\"entry\">", "</tr>").len(), 1);

        // Sent again, the server refuses it again: a dead letter again, then discarded.
        sync(&w.b, &w.transport).await;
        let letters = w.b.dead_letters().await.unwrap();
        assert_eq!(letters.len(), 1);
        let seq = letters[0].seq;
        let done = replica
            .post(&format!("/sync/dead-letters/{seq}/discard"), &[])
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER);
        assert!(w.b.dead_letters().await.unwrap().is_empty());
        assert_eq!(w.b.pending().await.unwrap(), 0);

        // A replica without write access shows no actions and refuses them.
        let read_only = Web::start_with(w.a.database().clone(), w.b_config.clone(), false).await;
        let refused = read_only
            .post(&format!("/sync/dead-letters/{seq}/retry"), &[])
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    })
    .await;
}

parity_tests::parity_test!(async fn a_database_that_never_synced_says_so(t) {
    let web = Web::start(&t, false).await;
    let page = web.page("/sync").await;
    match t.backend() {
        dal::Backend::Sqlite => assert!(page.contains("id=\"not-a-replica\""), "{page}"),
        dal::Backend::Postgres => assert!(page.contains("id=\"no-conflicts\""), "{page}"),
    }
});

/// A transport whose server is never reachable.
struct Unreachable;

#[async_trait::async_trait]
impl sync::Transport for Unreachable {
    async fn push(
        &self,
        _: sync::protocol::PushBatch,
    ) -> Result<sync::protocol::PushAck, sync::TransportError> {
        Err(sync::TransportError::Transient(
            "connection refused (test)".into(),
        ))
    }

    async fn pull(
        &self,
        _: sync::protocol::PullRequest,
    ) -> Result<sync::protocol::PullPage, sync::TransportError> {
        Err(sync::TransportError::Transient(
            "connection refused (test)".into(),
        ))
    }
}

/// The last sync an engine ran (in another program: the engine stores its outcome in
/// the replica) is on the sync page: a success, then a failure with its error and the
/// last success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_sync_an_engine_ran_is_shown_with_its_error() {
    parity_tests::run_on(Target::Postgres, Setup::Migrated, |t| async move {
        let dir = tempfile::tempdir().unwrap();
        let w = world(&t, dir.path()).await;
        let replica = Web::start_with(w.a.database().clone(), w.b_config.clone(), false).await;
        let page = replica.page("/sync").await;
        assert!(page.contains("No sync engine has run"), "{page}");

        let transport = std::sync::Arc::new(sync::PostgresTransport::new(t.db.clone()));
        let engine = sync::SyncEngine::start(w.a.clone(), transport, sync::SyncOptions::default());
        engine.sync_now().await.unwrap();
        engine.shutdown().await;
        let page = replica.page("/sync").await;
        let line = all_between(&page, "<p id=\"last-sync\">", "</p>").join("");
        assert!(line.contains("succeeded"), "{page}");
        let succeeded = w.a.last_sync().await.unwrap().unwrap();
        assert_eq!(succeeded.error, None);
        assert!(succeeded.last_success.is_some());

        let engine = sync::SyncEngine::start(
            w.a.clone(),
            std::sync::Arc::new(Unreachable),
            sync::SyncOptions::default(),
        );
        assert!(engine.sync_now().await.is_err());
        engine.shutdown().await;
        let page = replica.page("/sync").await;
        let line = all_between(&page, "<p id=\"last-sync\">", "</p>").join("");
        assert!(
            line.contains("failed") && line.contains("connection refused (test)"),
            "{page}"
        );
        let failed = w.a.last_sync().await.unwrap().unwrap();
        assert!(failed.at >= succeeded.at);
        assert!(failed.error.is_some());
        assert!(!failed.unauthorized);
        // The failing engine never succeeded itself: the replica's last success is kept.
        assert_eq!(failed.last_success, succeeded.last_success);
        assert!(
            line.contains(&succeeded.last_success.unwrap().to_rfc3339()),
            "{page}"
        );
    })
    .await;
}
