//! The schema page: migrations, version, drift check.

use dal::Database;
use dal::prelude::*;
use parity_tests::parity_test;

use crate::web::{Web, all_between};

parity_test!(async fn the_schema_page_shows_migrations_version_and_drift(t) {
    let web = Web::start(&t, false).await;
    // Opening the page does not run the check (on Postgres it makes a scratch schema).
    let plain = web.page("/schema").await;
    assert!(plain.contains("id=\"run-drift\"") && !plain.contains("id=\"drift\""), "{plain}");
    let page = web.page("/schema?drift=1").await;
    let version = all_between(&page, "<strong id=\"schema-version\">", "</strong>")[0];
    assert_eq!(version, Database::latest_schema_version());
    assert!(page.contains("<p id=\"pending-count\">0 pending</p>"), "{page}");
    let applied = t.db.applied_migrations().await.unwrap();
    for name in &applied {
        assert!(page.contains(&format!("<tr class=\"applied\"><td>{name}</td>")), "{name}");
    }
    assert!(page.contains("<p id=\"drift\" class=\"clean\">no differences</p>"), "{page}");

    // A hand-made index is drift, and the page says so.
    t.db.execute_sql("CREATE INDEX studio_drift_idx ON shots (name)", vec![])
        .await
        .unwrap();
    let page = web.page("/schema?drift=1").await;
    let drift = all_between(&page, "<ul id=\"drift\">", "</ul>");
    assert_eq!(drift.len(), 1, "{page}");
    assert!(drift[0].contains("studio_drift_idx"), "{}", drift[0]);
});
