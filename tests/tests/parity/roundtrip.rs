//! Property tests of round trips: what is written reads back equal on both backends, and
//! what one backend cannot store fails the same way on both.
//!
//! Cases come from a deterministic runner (fixed seed), so both backends and every run see
//! the same values; a failure prints the value.

use chrono::{DateTime, Utc};
use dal::DalError;
use dal::prelude::*;
use parity_tests::{TestDb, parity_test};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

const CASES: usize = 64;

/// Strings that have broken SQL layers before, and arbitrary printable unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("'; DROP TABLE projects; --".to_owned()),
        Just("Robert'); DELETE FROM users WHERE ('1' = '1".to_owned()),
        Just("\" OR \"\"=\"".to_owned()),
        Just("SELECT * FROM tasks; UPDATE tasks SET status = 'Complete'".to_owned()),
        Just("$1 ? :name @p0 %s {}".to_owned()),
        Just("emoji 🎬🎞️👩‍👩‍👧 and RTL \u{202e}txet".to_owned()),
        Just("tab\tnewline\ncr\rbackslash\\".to_owned()),
        "[\\PC]{1,40}",
        "\\PC{1,200}",
    ]
    .prop_filter("required text is not blank", |s| !s.trim().is_empty())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0)].prop_map(|n| json!(n)),
        Just(json!(u64::MAX)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Any instant in years 1..=9999 (what both backends store), to the microsecond.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let min = DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
        .unwrap()
        .timestamp_micros();
    let max = DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999999Z")
        .unwrap()
        .timestamp_micros();
    (min..=max).prop_map(|micros| DateTime::from_timestamp_micros(micros).unwrap())
}

fn sample<S: Strategy>(runner: &mut TestRunner, strategy: &S) -> S::Value {
    strategy
        .new_tree(runner)
        .expect("strategy generates")
        .current()
}

async fn owner(t: &TestDb) -> (entities::user::Model, entities::project::Model) {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let project =
        t.db.projects()
            .create(NewProject::new(user.id, "P"))
            .await
            .unwrap();
    (user, project)
}

parity_test!(async fn text_fields_round_trip(t) {
    let mut runner = TestRunner::deterministic();
    let (user, project) = owner(&t).await;
    let strategy = text();
    for _ in 0..CASES {
        let value = sample(&mut runner, &strategy);
        let p = t.db.projects().create(NewProject::new(user.id, value.clone())).await.unwrap();
        assert_eq!(t.db.projects().get(p.id).await.unwrap().name, value);
        let task = t.db.tasks().create(NewTask::queued(project.id, value.clone(), json!({}))).await.unwrap();
        assert_eq!(t.db.tasks().get(task.id).await.unwrap().task_type, value);
        // Emails are capped (dal::repo::MAX_EMAIL_BYTES); keep the text's start.
        let short: String = value.chars().take(40).collect();
        let u = t.db.users().create(NewUser::new().email(format!("{short}{}", Id::new())).display_name(value.clone())).await.unwrap();
        assert_eq!(t.db.users().get(u.id).await.unwrap(), u);
    }
});

parity_test!(async fn json_params_round_trip(t) {
    let mut runner = TestRunner::deterministic();
    let (_, project) = owner(&t).await;
    let strategy = json_value();
    let fixed = [json!({}), json!([]), json!({"nested": {"deeper": [1, {"k": "ünï"}]}}), json!("just a string"), json!(null)];
    for i in 0..CASES + fixed.len() {
        let params = fixed.get(i).cloned().unwrap_or_else(|| sample(&mut runner, &strategy));
        let task = t.db.tasks().create(NewTask::queued(project.id, "t", params.clone())).await.unwrap();
        let read = t.db.tasks().get(task.id).await.unwrap().params;
        // Numbers come back in their canonical form (`-0.0` as `0.0`, an integral float
        // of 1e16 or more that fits u64 as that integer); everything else as written.
        assert_eq!(read, entities::json::canonical(params.clone()), "JSON {params}");
        assert_eq!(task.params, read, "create returns what get reads: {params}");
    }
});

parity_test!(async fn uuid_lists_round_trip_at_0_1_and_1000(t) {
    let (_, project) = owner(&t).await;
    for len in [0usize, 1, 2, 1000] {
        let list: IdList = (0..len).map(|_| uuid::Uuid::now_v7()).collect();
        let now = dal::clock::now();
        let task = entities::task::ActiveModel {
            row_version: sea_orm::ActiveValue::Set(1),
            id: Set(Id::new()),
            task_type: Set("t".into()),
            params: Set(json!({})),
            status: Set(TaskStatus::Pending),
            dependant_on: Set(list.clone()),
            output_location: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            project_id: Set(project.id),
            // The lease columns take their defaults.
            ..Default::default()
        }
        .insert(&t.db)
        .await
        .unwrap();
        assert_eq!(task.dependant_on, list);
        assert_eq!(t.db.tasks().get(task.id).await.unwrap().dependant_on, list, "{len} ids");
    }
});

parity_test!(async fn timestamps_round_trip_across_years_and_sort_as_time(t) {
    let mut runner = TestRunner::deterministic();
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let strategy = instant();
    let mut written = Vec::new();
    for i in 0..CASES {
        // Nanoseconds are dropped at the boundary: both backends keep microseconds.
        let at = sample(&mut runner, &strategy) + chrono::Duration::nanoseconds(789);
        let project = entities::project::ActiveModel {
            row_version: sea_orm::ActiveValue::Set(1),
            id: Set(Id::new()),
            name: Set(format!("p{i}")),
            user_id: Set(user.id),
            created_at: Set(at),
        }
        .insert(&t.db)
        .await
        .unwrap();
        let read = t.db.projects().get(project.id).await.unwrap();
        assert_eq!(read.created_at, at - chrono::Duration::nanoseconds(789), "{at}");
        written.push(read);
    }
    written.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));
    let page = t.db.projects().list_for_user(user.id, PageRequest::first(100)).await.unwrap();
    assert_eq!(page.items, written, "the database orders them as time orders them");
});

parity_test!(async fn values_one_backend_cannot_store_fail_alike(t) {
    let (user, project) = owner(&t).await;
    let cases: Vec<(&str, DalError)> = vec![
        ("NUL in a name", t.db.projects().create(NewProject::new(user.id, "a\0b")).await.unwrap_err()),
        ("NUL in a task type", t.db.tasks().create(NewTask::queued(project.id, "\0", json!({}))).await.unwrap_err()),
        ("\\u0000 in JSON", t.db.tasks().create(NewTask::queued(project.id, "t", json!(["ok", "\u{0}"]))).await.unwrap_err()),
        ("NUL in an email", t.db.users().create(NewUser::new().email("x\0@y")).await.unwrap_err()),
    ];
    for (what, err) in cases {
        assert!(matches!(err, DalError::InvalidValue { .. }), "{what}: {err:?}");
    }
    assert_eq!(t.db.tasks().list_for_project(project.id, &TaskFilter::default(), PageRequest::first(100)).await.unwrap().items.len(), 0);
});
